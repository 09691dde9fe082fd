/**
 * How a pod's strings are read (its `<prefix>/inject` label or annotation, a
 * profile list, an override's value), defined once for both modes: the
 * webhook calls the functions below, and policy.ts writes the CEL functions
 * they are named after, which the API server runs. CEL cannot be changed, so
 * the webhook reads as CEL reads, not as JavaScript would: JavaScript's
 * `trim()` and `toLowerCase()` are not CEL's `trim()` and `lowerAscii()`.
 *
 * Kubernetes' CEL string library is cel-go's `ext.Strings(ext.StringsVersion(2))`
 * (k8s.io/apiserver pkg/cel/environment/base.go, from 1.29; cel-go v0.26.0
 * under k8s.io/apiserver v0.36.3, as test/policy-eval/go.mod pins it), whose
 * functions are in cel-go's ext/strings.go:
 *
 * - `trim()` is `trimSpace`: Go's `strings.TrimSpace`, which cuts what Go's
 *   `unicode.IsSpace` calls space from both ends: U+0009–U+000D, U+0020,
 *   U+0085, U+00A0, and above Latin-1 Unicode's White_Space property
 *   (U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Not
 *   JavaScript's set: that one has U+FEFF (a byte order mark) and lacks
 *   U+0085 (NEXT LINE). Neither cuts U+200B (ZERO WIDTH SPACE), which is no
 *   White_Space.
 * - `lowerAscii()` is `lowerASCII`: `unicode.ToLower` on runes up to
 *   `unicode.MaxASCII` only; every other character stays as it is (İ U+0130,
 *   the Kelvin sign U+212A, ſ U+017F: JavaScript's `toLowerCase()` turns the
 *   first into "i̇" and the second into "k").
 * - `split(sep)` is `split`: Go's `strings.Split` (an empty string is one
 *   empty entry; an empty separator splits after each character).
 * - `size()` on a string (CEL's standard library) counts code points, not
 *   UTF-16 units.
 *
 * Strings reach both modes as valid UTF-8 (the API server decodes JSON with
 * Go, which turns invalid sequences and lone surrogates into U+FFFD), so a
 * JavaScript string here never holds half a surrogate pair; every character
 * these functions look at is in the Basic Multilingual Plane anyway.
 * test/core/cel-strings.test.ts holds them to the characters above, and
 * test/core/policy-admission.test.ts holds the two modes to each other with
 * Kubernetes' own code over generated Unicode strings.
 */

/**
 * Go's `unicode.IsSpace` (go/src/unicode/graphic.go): the Latin-1 spaces it
 * lists, and the White_Space table (go/src/unicode/tables.go) above them.
 */
export const CEL_SPACE = '\t\n\v\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

const isSpace = (ch: string | undefined): boolean => ch !== undefined && CEL_SPACE.includes(ch);

/** CEL's `s.trim()`: Go's `strings.TrimSpace`, whitespace by `unicode.IsSpace` (not JavaScript's `trim()`). */
export function celTrim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isSpace(s[start])) start += 1;
  while (end > start && isSpace(s[end - 1])) end -= 1;
  return s.slice(start, end);
}

/** CEL's `s.lowerAscii()`: A–Z to a–z, nothing else (not JavaScript's `toLowerCase()`). */
export function celLowerAscii(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** CEL's `s.split(sep)`: Go's `strings.Split`. */
export function celSplit(s: string, sep: string): string[] {
  // strings.Split with an empty separator: one entry per character (code point), none for an empty string.
  return sep === '' ? Array.from(s) : s.split(sep);
}

/** CEL's `size(s)` for a string: code points. */
export function celSize(s: string): number {
  return Array.from(s).length;
}

/** The same functions as CEL source, for policy.ts: `cel.trim("x")` is `x.trim()`. */
export const cel = {
  trim: (expr: string): string => `${expr}.trim()`,
  lowerAscii: (expr: string): string => `${expr}.lowerAscii()`,
  split: (expr: string, sep: string): string => `${expr}.split(${JSON.stringify(sep)})`,
  size: (expr: string): string => `size(${expr})`,
};
