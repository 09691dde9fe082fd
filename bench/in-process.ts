/**
 * One admission without HTTP: the core (decide + inject + diff + response) on
 * a parsed review, the same with JSON parsing and serialisation, and how the
 * core's cost grows with the number of containers and of env vars.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseConfigText } from '../src/config/load.js';
import type { CompiledConfig } from '../src/core/config.js';
import { mutate, type MutateContext } from '../src/core/mutate.js';
import { parseReview } from '../src/core/review.js';
import { review, type PayloadName, type Shape } from './payloads.js';
import { ROOT } from './servers.js';
import { median } from './stats.js';

/** Median µs of `fn` over `iterations` runs, after a warm-up. */
function timeIt(fn: () => void, iterations: number): number {
  for (let i = 0; i < Math.min(200, iterations); i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    fn();
    samples.push((performance.now() - t) * 1000);
  }
  return median(samples);
}

function exampleConfig(): CompiledConfig {
  const loaded = parseConfigText(readFileSync(join(ROOT, 'config/example.yaml'), 'utf8'), 'example.yaml');
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  return loaded.compiled;
}

/** The webhook's context without a cluster, on a server with native sidecars. */
function exampleContext(): MutateContext {
  return { config: exampleConfig(), namespaceLabels: () => undefined, server: { nativeSidecars: true } };
}

/** Rows: payload, KB, core µs, core µs/KB, with JSON µs, with JSON ms. */
export function perPayload(ctx = exampleContext()): string[][] {
  const rows: string[][] = [];
  for (const payload of ['small', 'large', 'huge'] as PayloadName[]) {
    const text = JSON.stringify(review(payload));
    const iterations = payload === 'huge' ? 300 : 3000;
    const parsedOnce = parseReview(JSON.parse(text));
    if (!parsedOnce.ok) throw new Error(parsedOnce.error);
    const core = timeIt(() => {
      const r = mutate(parsedOnce.review, ctx);
      if (!r.ok || !r.review.response.patch) throw new Error('no patch');
    }, iterations);
    const withJson = timeIt(() => {
      const parsed = parseReview(JSON.parse(text));
      if (!parsed.ok) throw new Error(parsed.error);
      JSON.stringify(mutate(parsed.review, ctx));
    }, iterations);
    const kb = Buffer.byteLength(text) / 1024;
    rows.push([payload, kb.toFixed(1), core.toFixed(1), (core / kb).toFixed(3), withJson.toFixed(0), (withJson / 1000).toFixed(2)]);
  }
  return rows;
}

/** Rows: what grows, n, core µs, µs per unit. It must grow linearly (or stay flat). */
export function growth(ctx = exampleContext()): string[][] {
  const rows: string[][] = [];
  const series: [string, Shape[]][] = [
    ['containers', [5, 10, 20, 40, 80].map((n) => ({ containers: n, envPerContainer: 10, portsPerContainer: 1, mountsPerContainer: 2 }))],
    ['env per container', [750, 1500, 3000, 6000].map((n) => ({ containers: 5, envPerContainer: n, portsPerContainer: 1, mountsPerContainer: 1 }))],
  ];
  for (const [what, shapes] of series) {
    for (const shape of shapes) {
      const parsed = parseReview(JSON.parse(JSON.stringify(review(shape))));
      if (!parsed.ok) throw new Error(parsed.error);
      const us = timeIt(() => mutate(parsed.review, ctx), 500);
      const n = what === 'containers' ? shape.containers : shape.envPerContainer;
      rows.push([what, String(n), us.toFixed(1), (us / n).toFixed(2)]);
    }
  }
  return rows;
}
