/**
 * Kubernetes resource quantities (`500m`, `128Mi`, `1e3`): parsing to a number
 * so requests can be compared with limits. Negative quantities are refused:
 * no resource field accepts them.
 */
const QUANTITY = /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value, or undefined when the text is not a valid quantity. */
export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const mantissa = Number(m[1]);
  const suffix = m[2] ?? '';
  // E (exa) and Ei (exbi) are suffixes; E3 and e-3 are exponents.
  const multiplier = MULTIPLIERS[suffix] ?? 10 ** Number(suffix.slice(1));
  const value = mantissa * (multiplier ?? NaN);
  return Number.isFinite(value) ? value : undefined;
}

const DECIMAL_EXPONENTS: Record<string, number> = { '': 0, n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_EXPONENTS: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** The exact value as a fraction (numerator, denominator), or undefined when the text is not a quantity parseQuantity accepts. */
function exactQuantity(text: string): [bigint, bigint] | undefined {
  const m = QUANTITY.exec(text);
  if (!m || parseQuantity(text) === undefined) return undefined;
  const [whole = '', fraction = ''] = (m[1] ?? '').split('.');
  const suffix = m[2] ?? '';
  let numerator = BigInt(`${whole}${fraction}` || '0');
  let denominator = 10n ** BigInt(fraction.length);
  const binary = BINARY_EXPONENTS[suffix];
  const decimal = binary === undefined ? (DECIMAL_EXPONENTS[suffix] ?? Number(suffix.slice(1))) : 0;
  // parseQuantity's finite value bounds the exponent; a tiny number written with a huge negative one is not worth the BigInt.
  if (Math.abs(decimal) > 1000) return undefined;
  if (binary !== undefined) numerator *= 2n ** BigInt(binary);
  if (decimal >= 0) numerator *= 10n ** BigInt(decimal);
  else denominator *= 10n ** BigInt(-decimal);
  return [numerator, denominator];
}

/**
 * Compares two quantities exactly (`9m` equals `0.009`, which floating point
 * multiplication does not promise): -1, 0 or 1, or undefined when either is
 * not a quantity. As Kubernetes' Quantity.Cmp and CEL's compareTo compare.
 */
export function compareQuantities(a: string, b: string): -1 | 0 | 1 | undefined {
  const x = exactQuantity(a);
  const y = exactQuantity(b);
  if (!x || !y) return undefined;
  const left = x[0] * y[1];
  const right = y[0] * x[1];
  return left > right ? 1 : left < right ? -1 : 0;
}
