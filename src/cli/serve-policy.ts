/**
 * `serve --policy NAME` (SPEC 2, 7 Policy mode): no `/mutate`, no TLS. Keeps
 * the admission policies compiled from the config in force on the API server
 * (kube/policy-writer.ts: proven on canary pods, then applied), at start and
 * on every reload; a config the policy cannot express is rejected like a bad
 * config (the last good one stays, an error is logged and counted). Runs the
 * in-server audit when asked, and serves /metrics, /healthz and /readyz on
 * the metrics port. With this process down, injection goes on with the last
 * policy written: it is not in the admission path.
 */
import type { Logger } from 'pino';
import { configOf } from '../config/load.js';
import type { CompiledConfig } from '../core/config.js';
import { featuresOf, parseKubeVersion, type KubeVersion } from '../core/kube-version.js';
import { compilePolicy, policyScope } from '../core/policy.js';
import { connectCluster, type KubeClient } from '../kube/client.js';
import { replicaIdentity } from '../kube/replica-lease.js';
import { managedObjects, PolicyWriter } from '../kube/policy-writer.js';
import { createMetrics } from '../ops/metrics.js';
import { fileOf, readFiles, watchFiles, type FileRead } from '../ops/watch.js';
import { listenHttp } from '../server/listen.js';
import { createMetricsApp } from '../server/metrics-app.js';
import type { ParsedFlags } from './args.js';
import { StartupError } from './startup-error.js';
import { startAuditLoop } from './cluster.js';

export interface PolicyServeSettings {
  name: string;
  configPath: string;
  watchConfig: boolean;
  metricsPort: number;
  host: string;
  kubeVersion: KubeVersion | undefined;
  auditIntervalMs: number | undefined;
}


/** The config (as read), compiled and compilable into a policy; a reason otherwise. */
function loadPolicyConfig(file: FileRead, name: string, version: KubeVersion): { ok: true; compiled: CompiledConfig } | { ok: false; errors: string[] } {
  const loaded = configOf(file);
  if (!loaded.ok) return loaded;
  const policy = compilePolicy(loaded.compiled, name, version);
  return policy.ok ? loaded : { ok: false, errors: policy.problems };
}

async function serverVersion(client: KubeClient, given: KubeVersion | undefined): Promise<KubeVersion> {
  if (given) return given;
  const { body } = await client.request('GET', '/version', { timeoutMs: 10_000 });
  const v = parseKubeVersion(String((body as { gitVersion?: string }).gitVersion ?? '').replace(/^v/, ''));
  if (!v) throw new StartupError(['cannot tell the API server version (GET /version); give --kube-version']);
  return v;
}

/** /readyz: not ready until a policy is in force (proven and applied, or found in place), or until the bound has passed. */
function notReadyUntilInForce(writer: PolicyWriter, logger: Logger, boundMs = 30_000): () => string | undefined {
  const started = Date.now();
  let gaveUp = false;
  return () => {
    if (gaveUp || writer.inForce()) return undefined;
    if (Date.now() - started < boundMs) return 'no policy proven and in force yet';
    gaveUp = true;
    logger.error({ afterMs: boundMs }, 'ready without a policy in force: see the policy log lines above');
    return undefined;
  };
}

export async function servePolicy(s: PolicyServeSettings, flags: ParsedFlags, env: Readonly<Record<string, string | undefined>>, logger: Logger, lean: boolean | undefined): Promise<{ metricsPort: number | undefined; shutdown(): Promise<void> }> {
  let client: KubeClient | undefined;
  let version: KubeVersion;
  try {
    client = await connectCluster({ kubeconfig: flags.kubeconfig as string | undefined, env, lean });
    if (!client) throw new StartupError(['--policy needs cluster access (--kubeconfig, or running in a pod)']);
    version = await serverVersion(client, s.kubeVersion);
  } catch (err) {
    throw err instanceof StartupError ? err : new StartupError([(err as Error).message]);
  }
  const metrics = createMetrics();
  const files = await readFiles([s.configPath]);
  const first = loadPolicyConfig(fileOf(files, s.configPath), s.name, version);
  if (!first.ok) throw new StartupError(first.errors);
  let config = first.compiled;
  metrics.configRevision(config.revision);

  const namespace = replicaIdentity(env).namespace;
  const writer = new PolicyWriter({ client, name: s.name, namespace, kubeVersion: version, logger, config: () => config, onResult: metrics.policyWrite });
  writer.sync();
  // The audit judges by the config whose policy is in force (a reload not yet proven is not), and its
  // scope is that policy's bindings, as the API server applies them.
  const inForce = () => writer.inForce() ?? config;
  const scope = async () => {
    const compiled = compilePolicy(inForce(), s.name, version);
    return compiled.ok ? policyScope(managedObjects(compiled.objects).objects) : undefined;
  };
  const audit = s.auditIntervalMs ? startAuditLoop(client, s.auditIntervalMs, { logger, metrics, config: inForce, server: () => featuresOf(version), scope }) : undefined;

  const watchers = s.watchConfig
    ? [
        // One reload per change, of the bytes compared (ops/watch.ts), from those loaded at start on.
        await watchFiles(
          [s.configPath],
          async (changed) => {
            const next = loadPolicyConfig(fileOf(changed, s.configPath), s.name, version);
            if (!next.ok) {
              metrics.configReload('failure');
              logger.error({ errors: next.errors, revision: config.revision }, 'config reload rejected; keeping the last good config and policy');
              return false;
            }
            config = next.compiled;
            metrics.configReload('success');
            metrics.configRevision(config.revision);
            logger.info({ revision: config.revision }, 'config reloaded');
            writer.sync();
            return true;
          },
          { inForce: files, onRestored: () => logger.info({ revision: config.revision }, 'config file is back to the config in force; nothing to reload') },
        ),
      ]
    : [];

  let ready = true;
  const listener = s.metricsPort === 0 ? undefined : await listenHttp(createMetricsApp(metrics.registry, () => ready, notReadyUntilInForce(writer, logger)), { port: s.metricsPort, host: s.host });
  logger.info({ policy: s.name, namespace, kubeVersion: `${version.major}.${version.minor}`, revision: config.revision, metricsPort: listener?.port ?? null }, 'keeping the admission policy in step with the config');
  return {
    metricsPort: listener?.port,
    shutdown: async () => {
      ready = false;
      for (const w of watchers) w.close();
      writer.stop();
      audit?.stop();
      await listener?.drain(5000);
      logger.info('shut down');
    },
  };
}
