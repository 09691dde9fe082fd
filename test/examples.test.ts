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
  {
    dir: 'tenant-profiles',
    input: 'app.yaml',
    output: 'app.injected.yaml',
    flags: ['--namespace-label', 'sidecar-injector.io/tenant-profiles=enabled', '--profiles', 'examples/tenant-profiles/db-proxy.yaml'],
  },
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

describe('examples/tenant-profiles: the SidecarProfiles against the limits', () => {
  const args = ['validate-config', '--config', 'examples/tenant-profiles/injector-config.yaml', 'examples/tenant-profiles/db-proxy.yaml', 'examples/tenant-profiles/refused.yaml'];

  it('the README shows the command', () => {
    expect(read('tenant-profiles/README.md').replace(/\\\n\s*/g, '')).toContain(`sidecar-injector ${args.join(' ')}`);
  });

  it('db-proxy is accepted; debug-tools is refused, one line per field and rule', async () => {
    const out = await runCli(args.map((a) => (a.startsWith('examples/') ? at(a.slice('examples/'.length)) : a)));
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('shop/db-proxy: accepted\n');
    const lines = out.stderr.trim().split('\n');
    expect(lines.every((l) => l.startsWith('shop/debug-tools: OutsideLimits: spec.'))).toBe(true);
    expect(lines.map((l) => /\(rule (\w+)\)$/.exec(l)?.[1])).toEqual(
      expect.arrayContaining(['allowedRegistries', 'maxResources', 'privileged', 'hostPathVolumes']),
    );
  });
});
