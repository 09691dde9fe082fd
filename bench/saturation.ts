/** Closed-loop load: autocannon keeps every keep-alive TLS connection busy, so throughput is the server's ceiling. */
import autocannon from 'autocannon';
import { bodyTemplate, type PayloadName } from './payloads.js';

export interface Run {
  rps: number;
  /** Requests answered in the run. */
  requests: number;
  p50: number;
  p99: number;
  errors: number;
}

export async function saturate(url: string, payload: PayloadName, seconds: number, connections: number): Promise<Run> {
  const { make } = bodyTemplate(payload);
  const result = await autocannon({
    url: `${url}/mutate`,
    method: 'POST',
    connections,
    pipelining: 1,
    duration: seconds,
    headers: { 'content-type': 'application/json' },
    requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, body: make() }) }],
  });
  return { rps: result.requests.average, requests: result.requests.total, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx + result.timeouts };
}
