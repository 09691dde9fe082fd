import { describe, expect, it } from '@jest/globals';
import { compareQuantities, isQuantity } from '../../src/core/quantity.js';

describe('isQuantity: the grammar, and what resource.ParseQuantity takes', () => {
  it.each(['100m', '1', '1.5', '64Mi', '1G', '2Ki', '1e3', '.5', '1E', '2Ei', '1E3', '1.', '007', '1e400', '1e-400', '1e4294967297', '9223372036854775807e9223372036854775807'])(
    'takes %j',
    (text) => {
      expect(isQuantity(text)).toBe(true);
    },
  );
  // No sign (no resource takes a negative), nor what ParseQuantity refuses: an exponent beyond int64 (ErrSuffix).
  it.each(['', 'abc', '-1', '+1', '1MB', '1 Mi', '1.2.3', 'Mi', '.', '1e', '5e3x', '1e9223372036854775808', '1e-9223372036854775809'])('refuses %j', (text) => {
    expect(isQuantity(text)).toBe(false);
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

  // What resource.ParseQuantity makes of them (checked against k8s.io/apimachinery v0.36.3's AsDec()).
  it.each<[string, string, -1 | 0 | 1]>([
    // Rounded UP to nano precision (inf.RoundUp): a request a hair above its limit is equal to it.
    ['0.1000000002', '0.1000000001', 0],
    ['0.1000000001', '100000001n', 0],
    ['0.1000000001', '0.100000001', 0],
    ['1e-10', '1n', 0],
    ['0.0000000001', '1n', 0],
    ['5e-10', '1n', 0],
    ['1e-400', '1n', 0],
    ['1e-400', '0', 1],
    ['0.000e-99', '0', 0],
    ['0.1000000001m', '100001n', 0],
    ['0.0000000001Ki', '103n', 0],
    ['12345678901234567890n', '12345678901.23456789', 0],
    ['1234567890123456789.5', '1234567890123456789.5', 0],
    // Decimals are not capped: 1e400 is 10^400.
    ['1e400', '1e399', 1],
    ['1e400', `1${'0'.repeat(400)}`, 0],
    ['1e400', '9223372036854775807', 1],
    // (Kubernetes builds 10^2147483009 for this one, and takes minutes; here it is only compared.)
    ['1e2147483000', '1e2146483000', 1],
    // Binary values are capped at max int64 (maxAllowed).
    ['8Ei', '9223372036854775807', 0],
    ['9Ei', '8Ei', 0],
    ['100000000000Ei', '7.99999999999999999999Ei', 0],
    ['7Ei', '8Ei', -1],
    // The exponent is truncated to int32 (int32(parsed)).
    ['1e4294967296', '1', 0],
    ['1e4294967297', '10', 0],
    ['1e-4294967296', '1', 0],
    ['1e9223372036854775807', '100m', 0],
  ])('%s against %s: %d', (a, b, order) => {
    expect(compareQuantities(a, b)).toBe(order);
    expect(compareQuantities(b, a)).toBe(order === 0 ? 0 : -order);
  });

  it.each(['', 'lots', '-1', '1e99999999999999999999'])('%j is not compared', (text) => {
    expect(compareQuantities(text, '1')).toBeUndefined();
    expect(compareQuantities('1', text)).toBeUndefined();
  });
});
