/**
 * The string functions both modes read a pod's strings with (src/core/cel-strings.ts), held to what
 * Kubernetes' CEL does (cel-go ext/strings.go over Go's strings and unicode packages). That the compiled
 * policy, run by Kubernetes' own code, agrees with the webhook on such strings is
 * test/core/policy-admission.test.ts.
 */
import { describe, expect, it } from '@jest/globals';
import { CEL_SPACE, cel, celLowerAscii, celSize, celSplit, celTrim } from '../../src/core/cel-strings.js';
import { head, warning } from '../../src/core/warning.js';

const hex = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
const everyCodePoint = function* () {
  for (let c = 0; c <= 0x10ffff; c += 1) if (c < 0xd800 || c > 0xdfff) yield String.fromCodePoint(c);
};

describe('celTrim: CEL\'s trim(), Go\'s strings.TrimSpace', () => {
  it('cuts exactly what Go\'s unicode.IsSpace calls space: the Unicode White_Space property', () => {
    // unicode.IsSpace is its Latin-1 list (\t \n \v \f \r, space, U+0085, U+00A0) and White_Space above it,
    // which is White_Space throughout; the property has not changed since Unicode 6.3 (U+180E left it).
    const differ = [...everyCodePoint()].filter((ch) => (celTrim(`${ch}x${ch}`) === 'x') !== /^\p{White_Space}$/u.test(ch));
    expect(differ.map(hex)).toEqual([]);
    expect([...CEL_SPACE].map(hex)).toEqual([...everyCodePoint()].filter((ch) => /^\p{White_Space}$/u.test(ch)).map(hex));
  });

  it.each([
    ['\u00a0', 'NO-BREAK SPACE', true],
    ['\u0085', 'NEXT LINE (JavaScript\'s trim() keeps it)', true],
    ['\u1680', 'OGHAM SPACE MARK', true],
    ['\u2028', 'LINE SEPARATOR', true],
    ['\u3000', 'IDEOGRAPHIC SPACE', true],
    ['\ufeff', 'BYTE ORDER MARK (JavaScript\'s trim() cuts it)', false],
    ['\u200b', 'ZERO WIDTH SPACE', false],
    ['\u180e', 'MONGOLIAN VOWEL SEPARATOR', false],
  ])('%j (%s) is cut: %s', (ch, _, cut) => {
    expect(celTrim(`${ch}${ch} true ${ch}`)).toBe(cut ? 'true' : `${ch}${ch} true ${ch}`);
  });

  it('cuts only at the ends, and the empty string stays empty', () => {
    expect(celTrim(' \u00a0a\u3000b\u0085 ')).toBe('a\u3000b');
    expect(celTrim('')).toBe('');
    expect(celTrim('\u2028\u0085 \t')).toBe('');
    expect(celTrim('\u{1f600} ')).toBe('\u{1f600}');
  });
});

describe('celLowerAscii: CEL\'s lowerAscii(), A–Z only', () => {
  it('changes no character but A–Z (cel-go\'s lowerASCII: unicode.ToLower up to unicode.MaxASCII)', () => {
    const changed = [...everyCodePoint()].filter((ch) => celLowerAscii(ch) !== ch);
    expect(changed.join('')).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    expect(celLowerAscii(changed.join(''))).toBe('abcdefghijklmnopqrstuvwxyz');
  });

  it.each([
    ['TRUE', 'true'],
    ['FaLsE', 'false'],
    // cel-go's own example (ext/strings.go).
    ['TacoCÆt Xii', 'tacocÆt xii'],
    ['\u0130', '\u0130'], // İ: JavaScript's toLowerCase() gives "i̇"
    ['\u0131', '\u0131'], // ı
    ['\u212a', '\u212a'], // the Kelvin sign: JavaScript's toLowerCase() gives "k"
    ['\u017f', '\u017f'], // ſ
    ['TRU\u0395', 'tru\u0395'], // a Greek capital epsilon
    ['@[`{', '@[`{'],
  ])('%j → %j', (s, lower) => {
    expect(celLowerAscii(s)).toBe(lower);
  });
});

describe('celSplit: CEL\'s split(), Go\'s strings.Split', () => {
  it.each([
    ['', ',', ['']],
    [',', ',', ['', '']],
    ['a,,b,', ',', ['a', '', 'b', '']],
    ['a\u00a0,b', ',', ['a\u00a0', 'b']],
    ['a\u{1f600}', '', ['a', '\u{1f600}']],
    ['', '', []],
  ])('%j by %j → %j', (s, sep, parts) => {
    expect(celSplit(s, sep)).toEqual(parts);
  });
});

describe('celSize: CEL\'s size() of a string, in code points', () => {
  it('counts a character beyond U+FFFF once', () => {
    expect(celSize('a\u{1f600}\u00a0')).toBe(3);
    expect(celSize('')).toBe(0);
  });
});

describe('cel: the same functions as CEL source', () => {
  it('writes the calls policy.ts compiles', () => {
    expect(cel.trim('variables.raw')).toBe('variables.raw.trim()');
    expect(cel.lowerAscii('x')).toBe('x.lowerAscii()');
    expect(cel.split('x', ',')).toBe('x.split(",")');
    expect(cel.size('v')).toBe('size(v)');
  });
});

describe('warnings never end in half a surrogate pair', () => {
  it('cuts one unit earlier rather than split a character beyond U+FFFF', () => {
    expect(head('ab\u{1f600}', 3)).toBe('ab');
    expect(head('ab\u{1f600}', 4)).toBe('ab\u{1f600}');
    expect(head('abc', 10)).toBe('abc');
    // 25 units of text and 92 x: the character's first half would be the 118th unit, the last one kept.
    const long = warning(`unknown sidecar profile "${'x'.repeat(92)}\u{1f600}\u{1f600}" ignored`);
    expect(long).toBe(`unknown sidecar profile "${'x'.repeat(92)}…`);
    expect(/[\ud800-\udbff](?![\udc00-\udfff])/.test(long)).toBe(false);
  });
});
