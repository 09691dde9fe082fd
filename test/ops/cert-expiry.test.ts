import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { watchExpiry } from '../../src/ops/cert-expiry.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { generateCertificates } from '../../src/tls/generate.js';
import { parsePrometheus, sampleValue } from '../helpers/ops.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }));
  return { logger, lines };
}

describe('certificate expiry', () => {
  it('exports notAfter of the certificate in force, updated when another comes into force', async () => {
    const metrics = createMetrics();
    const { logger } = capture();
    const watch = watchExpiry({ logger, gauge: metrics.certificateExpiry });
    const long = await generateCertificates({ service: 's', namespace: 'n', dev: false, days: 365 });
    watch.inForce(long.cert);
    const notAfter = new (await import('node:crypto')).X509Certificate(long.cert).validTo;
    const scrape = async () => sampleValue(parsePrometheus(await metrics.registry.metrics()), 'sidecar_injector_certificate_expiry_timestamp_seconds');
    expect(await scrape()).toBe(Math.floor(Date.parse(notAfter) / 1000));
    const short = await generateCertificates({ service: 's', namespace: 'n', dev: false, days: 10 });
    watch.inForce(short.cert);
    expect(await scrape()).toBeLessThan(Math.floor(Date.parse(notAfter) / 1000));
    watch.stop();
  });

  it('warns from 30 days before expiry: at once, then at most once a day', async () => {
    const { logger, lines } = capture();
    let now = Date.now();
    const watch = watchExpiry({ logger, gauge: () => undefined, now: () => now, checkEveryMs: 10 });
    watch.inForce((await generateCertificates({ service: 's', namespace: 'n', dev: false, days: 31 })).cert);
    expect(lines).toEqual([]);
    now += 2 * 86_400_000; // 29 days left
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.map((l) => l.msg)).toEqual(['serving certificate expires in 28 days']);
    expect(lines[0]).toMatchObject({ level: 40, daysLeft: 28 });
    now += 3_600_000;
    await new Promise((r) => setTimeout(r, 50));
    expect(lines).toHaveLength(1);
    now += 86_400_000;
    await new Promise((r) => setTimeout(r, 50));
    expect(lines).toHaveLength(2);
    watch.stop();
  });
});
