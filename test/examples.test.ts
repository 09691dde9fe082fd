/**
 * examples/ can never rot: each example's committed `inject` output is what
 * the commands in its README print now, and its config passes
 * validate-config. The example profile is the one in config/example.yaml.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { runCli } from './helpers/process.js';

const at = (path: string) => new URL(`../examples/${path}`, import.meta.url).pathname;
const read = (path: string) => readFileSync(at(path), 'utf8');

const EXAMPLES = [
  { dir: 'log-shipping', input: 'web.yaml', output: 'web.injected.yaml', flags: ['--namespace-label', 'sidecar-injector.io/injection=enabled'] },
  { dir: 'native-sidecar-job', input: 'job.yaml', output: 'job.injected.yaml', flags: [] },
];

describe.each(EXAMPLES)('examples/$dir', ({ dir, input, output, flags }) => {
  const args = ['inject', '-f', `examples/${dir}/${input}`, '--config', `examples/${dir}/injector-config.yaml`, ...flags];

  it('the README shows the command whose output is committed', () => {
    const readme = read(`${dir}/README.md`).replace(/\\\n\s*/g, '');
    expect(readme).toContain(`sidecar-injector ${args.join(' ')}`);
  });

  it(`${output} is what inject prints now`, async () => {
    const out = await runCli(args.map((a) => (a.startsWith('examples/') ? at(a.slice('examples/'.length)) : a)));
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(read(`${dir}/${output}`));
  });

  it('its config passes validate-config', async () => {
    const out = await runCli(['validate-config', at(`${dir}/injector-config.yaml`)]);
    expect(out.code).toBe(0);
  });
});

it("the examples' log-shipper profile is config/example.yaml's (apart from nativeSidecar)", () => {
  const profile = (text: string) => {
    const p = (parse(text) as { profiles: Record<string, Record<string, unknown>> }).profiles['log-shipper']!;
    return { ...p, nativeSidecar: undefined };
  };
  const shipped = profile(readFileSync(new URL('../config/example.yaml', import.meta.url), 'utf8'));
  for (const { dir } of EXAMPLES) expect(profile(read(`${dir}/injector-config.yaml`))).toEqual(shipped);
});
