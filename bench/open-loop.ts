/**
 * Open-loop load: requests are sent on a fixed schedule whether or not
 * earlier ones have been answered, and latency is measured from the
 * scheduled send time, so a slow server cannot hide its queueing
 * (no coordinated omission). Keep-alive TLS, verification on.
 */
import { Agent, request } from 'node:https';
import { performance } from 'node:perf_hooks';
import { percentile } from './stats.js';

export interface OpenLoopResult {
  sent: number;
  ok: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
}

export interface OpenLoopOptions {
  url: string;
  ca: string;
  rate: number;
  seconds: number;
  body: () => string;
}

/** Sends for `warmupSeconds` unmeasured (TLS handshakes, JIT), then measures on the same connections. */
export async function openLoop(opts: OpenLoopOptions & { warmupSeconds?: number }): Promise<OpenLoopResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 128, ca: opts.ca, servername: 'localhost' });
  try {
    if (opts.warmupSeconds) await schedule(agent, { ...opts, seconds: opts.warmupSeconds });
    return await schedule(agent, opts);
  } finally {
    agent.destroy();
  }
}

async function schedule(agent: Agent, opts: OpenLoopOptions): Promise<OpenLoopResult> {
  const url = new URL(opts.url);
  const total = Math.round(opts.rate * opts.seconds);
  const interval = 1000 / opts.rate;
  const latencies: number[] = [];
  let errors = 0;
  let done = 0;
  const start = performance.now() + 20;

  await new Promise<void>((resolve) => {
    let next = 0;
    const fire = (scheduled: number) => {
      const body = opts.body();
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) latencies.push(performance.now() - scheduled);
            else errors += 1;
            if (++done === total) resolve();
          });
        },
      );
      req.on('error', () => {
        errors += 1;
        if (++done === total) resolve();
      });
      req.end(body);
    };
    const tick = () => {
      const now = performance.now();
      while (next < total && start + next * interval <= now) fire(start + interval * next++);
      if (next < total) setTimeout(tick, Math.max(0, Math.min(1, start + next * interval - performance.now())));
    };
    tick();
  });
  latencies.sort((a, b) => a - b);
  return { sent: total, ok: latencies.length, errors, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN };
}
