import { describe, expect, it } from '@jest/globals';
import { compareQuantities, parseQuantity } from '../../src/core/quantity.js';

describe('parseQuantity', () => {
  it.each([
    ['100m', 0.1],
    ['1', 1],
    ['1.5', 1.5],
    ['64Mi', 64 * 2 ** 20],
    ['1G', 1e9],
    ['2Ki', 2048],
    ['1e3', 1000],
    ['.5', 0.5],
    ['1E', 1e18],
    ['2Ei', 2 * 2 ** 60],
    ['1E3', 1000],
  ])('%s = %d', (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value);
  });
  it.each(['', 'abc', '-1', '1MB', '1 Mi', '1.2.3', 'Mi'])('refuses %j', (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });
});

describe('compareQuantities: exact, as Kubernetes and CEL compare', () => {
  it.each<[string, string, -1 | 0 | 1]>([
    ['9m', '0.009', 0],
    ['700m', '0.7', 0],
    ['500m', '0.5', 0],
    ['501m', '500m', 1],
    ['256Mi', '268435456', 0],
    ['257Mi', '256Mi', 1],
    ['1Gi', '1G', 1],
    ['1e3', '1k', 0],
    ['1E-3', '1m', 0],
    ['.5', '500m', 0],
    ['100n', '1u', -1],
    ['0', '1n', -1],
    ['1Ei', '1E', 1],
  ])('%s against %s: %d', (a, b, order) => {
    expect(compareQuantities(a, b)).toBe(order);
    expect(compareQuantities(b, a)).toBe(order === 0 ? 0 : -order);
  });
  it.each(['', 'lots', '-1', '1e999', '1e-5000'])('%j is not compared', (text) => {
    expect(compareQuantities(text, '1')).toBeUndefined();
    expect(compareQuantities('1', text)).toBeUndefined();
  });
});
