import { describe, expect, it } from '@jest/globals';
import { mutate } from '../../src/core/mutate.js';
import { parseReview } from '../../src/core/review.js';
import { testConfig } from '../helpers/configs.js';
import { admissionReview, apiserverPod } from '../helpers/fixtures.js';

describe('mutate when the namespace labels could not be had', () => {
  it('decides as if the namespace had none, and says why in a warning under 120 characters', () => {
    const quiet = apiserverPod((p) => delete p.metadata!.annotations!['sidecar-injector.io/inject']);
    const review = parseReview(admissionReview(quiet));
    if (!review.ok) throw new Error(review.error);
    const ctx = { config: testConfig(), namespaceLabels: () => ({ 'sidecar-injector.io/injection': 'enabled' }), server: { nativeSidecars: true } };
    const withLabels = mutate(review.review, ctx);
    expect(withLabels.ok && withLabels.review.response.auditAnnotations?.decision).toBe('injected');

    const without = mutate(review.review, { ...ctx, namespaceProblem: 'GET /api/v1/namespaces/shop: no answer within 1000 ms' });
    if (!without.ok) throw new Error(without.error);
    expect(without.review.response.auditAnnotations?.decision).toBe('skipped');
    expect(without.review.response.warnings?.[0]).toMatch(/^namespace labels unavailable \(GET \/api\/v1\/namespaces\/shop/);
    expect(without.review.response.warnings!.every((w) => w.length < 120)).toBe(true);
  });
});
