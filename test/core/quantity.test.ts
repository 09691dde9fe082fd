import { describe, expect, it } from '@jest/globals';
import { parseQuantity } from '../../src/core/quantity.js';

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
  ])('%s = %d', (text, value) => {
    expect(parseQuantity(text)).toBeCloseTo(value);
  });
  it.each(['', 'abc', '-1', '1MB', '1 Mi', '1.2.3', 'Mi'])('refuses %j', (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });
});
