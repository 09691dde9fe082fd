/** Prometheus metrics (SPEC section 7), on a registry of our own: nothing global, nothing at import. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PodDecision } from '../core/admit.js';

export type AdmissionDecision = PodDecision | 'error';
export type ReloadResult = 'success' | 'failure';

const DECISIONS: AdmissionDecision[] = ['injected', 'skipped', 'unchanged', 'conflict', 'denied', 'error'];

export interface Metrics {
  registry: Registry;
  admission(decision: AdmissionDecision, seconds: number): void;
  configReload(result: ReloadResult): void;
  tlsReload(result: ReloadResult): void;
  configRevision(revision: string): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const admissions = new Counter({
    name: 'sidecar_injector_admissions_total',
    help: 'Admission requests answered on /mutate, by decision (error: bad request or internal failure).',
    labelNames: ['decision'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'sidecar_injector_admission_duration_seconds',
    help: 'Time from request to answer on /mutate, body parsing included.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const configReloads = new Counter({
    name: 'sidecar_injector_config_reloads_total',
    help: 'Config file reloads after start, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const tlsReloads = new Counter({
    name: 'sidecar_injector_tls_reloads_total',
    help: 'Certificate reloads after start, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const revision = new Gauge({
    name: 'sidecar_injector_config_revision',
    help: 'The config revision in force (label), always 1.',
    labelNames: ['revision'],
    registers: [registry],
  });

  // Every series exists from the start, so rate() and alerts see zeros rather than gaps.
  for (const d of DECISIONS) admissions.inc({ decision: d }, 0);
  for (const r of ['success', 'failure']) {
    configReloads.inc({ result: r }, 0);
    tlsReloads.inc({ result: r }, 0);
  }

  return {
    registry,
    admission: (decision, seconds) => {
      admissions.inc({ decision });
      duration.observe(seconds);
    },
    configReload: (result) => configReloads.inc({ result }),
    tlsReload: (result) => tlsReloads.inc({ result }),
    configRevision: (rev) => {
      revision.reset();
      revision.set({ revision: rev }, 1);
    },
  };
}
