/** Every relative link in the README, docs/ and examples/ resolves to a file (and an anchor to a heading). */
import { expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const markdown = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`),
  ...readdirSync(join(ROOT, 'examples'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => `examples/${f}`),
].filter((f) => f.endsWith('.md'));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');

it.each(markdown)('%s: relative links resolve', (file) => {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  const broken: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target!)) continue;
    const [path, hash] = target!.split('#') as [string, string | undefined];
    const resolved = path === '' ? join(ROOT, file) : join(ROOT, dirname(file), path);
    if (!existsSync(resolved)) broken.push(`${target} (no ${relative(ROOT, resolved)})`);
    else if (hash && resolved.endsWith('.md')) {
      const headings = [...readFileSync(resolved, 'utf8').matchAll(/^#+ (.+)$/gm)].map((m) => anchor(m[1]!));
      if (!headings.includes(hash)) broken.push(`${target} (no heading #${hash})`);
    }
  }
  expect(broken).toEqual([]);
});
