/**
 * Kubernetes resource quantities (`500m`, `128Mi`, `1e3`), valued and compared
 * exactly as Kubernetes values and compares them: resource.ParseQuantity and
 * Quantity.Cmp (k8s.io/apimachinery pkg/api/resource/quantity.go), which the
 * CEL quantity library's isQuantity(), quantity(), isGreaterThan() and
 * compareTo() call (k8s.io/apiserver pkg/cel/library/quantity.go), and which
 * the compiled policy uses for overrides (policy.ts). So the webhook and the
 * policy accept and refuse the same override values.
 *
 * Negative quantities (and a leading `+`) are refused: no resource field
 * accepts them, and the policy's grammar (policy.ts QUANTITY_RE) is this one.
 */
const QUANTITY = /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const DECIMAL_EXPONENTS: Record<string, number> = { '': 0, n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_EXPONENTS: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

/** Go's int32 arithmetic: quantity.go keeps exponents and scales in int32 and lets them wrap. */
const int32 = (n: bigint | number): number => Number(BigInt.asIntN(32, BigInt(n)));
const INT64_MAX = 2n ** 63n - 1n;
const NANO_PER_UNIT = 10n ** 9n;

/** A non-negative value coefficient × 10^exponent (exponent at least -9: ParseQuantity's nano precision). */
interface Exact {
  coefficient: bigint;
  exponent: number;
}

/** ⌈n / 10^k⌉ for n ≥ 0 without building 10^k when it is beyond n. */
function ceilShift(n: bigint, k: number): bigint {
  if (k <= 0) return n;
  if (n === 0n) return 0n;
  if (k > n.toString().length) return 1n;
  const d = 10n ** BigInt(k);
  return (n + d - 1n) / d;
}

/**
 * The value ParseQuantity gives the text, or undefined when the text is not a
 * quantity (this module's grammar, or ParseQuantity's error). Follows
 * ParseQuantity and parseQuantityString step by step:
 * - leading zeros do not count towards the digits (parseQuantityString);
 * - an exponent `e<n>` must fit int64 (suffixHandler.interpret's
 *   strconv.ParseInt, else ErrSuffix) and is then truncated to int32
 *   (`int32(parsed)`: `1e4294967297` is 10);
 * - a decimal of at most 18 digits at a scale of nano or coarser is taken
 *   exactly (the int64Amount fast path, its scale in int32);
 * - any other value is an inf.Dec, rounded UP to nano precision
 *   (`amount.Round(amount, Nano.infScale(), inf.RoundUp)`: `0.1000000001` and
 *   `0.1000000002` are both 100000001n, `1e-10` is 1n), and with a binary
 *   suffix capped at max int64 (`maxAllowed`: `8Ei` and `9Ei` are equal);
 *   decimals are not capped (`1e400` is 10^400).
 * Kubernetes builds 10^|scale| for an exponent near ±2^31 (and takes its
 * time); here such a value is only ever compared, never built.
 */
function kubernetesQuantity(text: string): Exact | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const [whole = '', fraction = ''] = (m[1] ?? '').split('.');
  const num = whole.replace(/^0+/, '') || '0';
  const denom = fraction;
  const digits = BigInt(`${num}${denom}`);
  const suffix = m[2] ?? '';
  const binary = BINARY_EXPONENTS[suffix];
  if (binary !== undefined) {
    // BinarySI: exact, rounded up to nano, capped at max int64 (the fast path's results are integers within it).
    const rounded = ceilShift(digits * 2n ** BigInt(binary) * NANO_PER_UNIT, denom.length);
    return { coefficient: rounded > INT64_MAX * NANO_PER_UNIT ? INT64_MAX * NANO_PER_UNIT : rounded, exponent: -9 };
  }
  let exponent = DECIMAL_EXPONENTS[suffix];
  if (exponent === undefined) {
    const parsed = BigInt(suffix.slice(1));
    if (parsed !== BigInt.asIntN(64, parsed)) return undefined;
    exponent = int32(parsed);
  }
  // The int64Amount fast path: precision = maxInt64Factors (18) - digits; scale -= len(denom), then scale >= Nano.
  const scale = int32(exponent - denom.length);
  if (18 - (num.length + denom.length) >= 0 && scale >= -9) return { coefficient: digits, exponent: scale };
  // The inf.Dec path: scale (inf's, upside down) = len(denom) + infScale(exponent), then rounded up to nano.
  const infScale = int32(denom.length + int32(-exponent));
  if (infScale <= 9) return { coefficient: digits, exponent: -infScale };
  return { coefficient: ceilShift(digits, infScale - 9), exponent: -9 };
}

/** Whether the text is a quantity: this module's grammar, and resource.ParseQuantity takes it (CEL's isQuantity()). */
export function isQuantity(text: string): boolean {
  return kubernetesQuantity(text) !== undefined;
}

/**
 * Compares two quantities exactly as Kubernetes' Quantity.Cmp does, after
 * ParseQuantity's rounding (CEL's compareTo(); isGreaterThan() is 1): -1, 0
 * or 1, or undefined when either is not a quantity. `9m` equals `0.009`.
 */
export function compareQuantities(a: string, b: string): -1 | 0 | 1 | undefined {
  const x = kubernetesQuantity(a);
  const y = kubernetesQuantity(b);
  if (!x || !y) return undefined;
  if (x.coefficient === 0n || y.coefficient === 0n) {
    const [p, q] = [x.coefficient === 0n ? 0 : 1, y.coefficient === 0n ? 0 : 1];
    return p > q ? 1 : p < q ? -1 : 0;
  }
  // Orders of magnitude first, so that an exponent of 2^31 is not built.
  const magnitude = (v: Exact) => v.coefficient.toString().length + v.exponent;
  const [mx, my] = [magnitude(x), magnitude(y)];
  if (mx !== my) return mx > my ? 1 : -1;
  // Same magnitude: the exponents differ by less than the coefficients' digits.
  const low = Math.min(x.exponent, y.exponent);
  const left = x.coefficient * 10n ** BigInt(x.exponent - low);
  const right = y.coefficient * 10n ** BigInt(y.exponent - low);
  return left > right ? 1 : left < right ? -1 : 0;
}
