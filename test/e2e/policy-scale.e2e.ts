/**
 * Policy mode at scale (issue 31), on a real kube-apiserver 1.36: configs of
 * 2, 10, 20 and 50 profiles (test/helpers/scale-configs.ts) compiled by the
 * CLI (`policy -o json`) and applied with `kubectl apply`, as
 * docs/policy-mode.md tells a user to. For each: the compiled size, whether
 * the API server accepts it (its warnings, or its refusal word for word),
 * and pod creation latency, interleaved in one loop: a plain pod in a
 * namespace no binding selects (the baseline), a pod that does not ask in
 * the policy's namespace, and a pod that asks for one profile. Then the
 * sizes around the limits the server showed (100 and 200 profiles refused):
 * 76, 77, 80 and 81 profiles (an object over the annotation limit of
 * client-side apply from 77, an expression over 100,000 characters from 81) and lean profiles
 * at 122-123 (an expression nested over 250 from 123). For those, the objects
 * are also compiled without the check, so that the server's own answer is
 * compared with `policy`'s: `policy` refuses exactly what the server refuses,
 * and warns where only client-side apply would be. Printed as a table;
 * written as JSON to $E2E_SCALE_OUT when set. Behaviour is asserted, never
 * a timing.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { leanConfigYaml, profileName, policySize, scaleConfigYaml, type PolicySize } from '../helpers/scale-configs.js';
import { runCli } from '../helpers/process.js';
import { parseConfigText } from '../../src/config/load.js';
import { compilePolicy, type PolicyObject } from '../../src/core/policy.js';
import { ApiServer } from './apiserver.js';
import { eventually, namespace, pod, type Pod } from './pods.js';
import { describeOn, NEEDS } from './server.js';

const { describe, applies } = describeOn(NEEDS.mutatingAdmissionPolicy, import.meta.url);

type Family = 'full' | 'lean';
const MEASURED = [2, 10, 20, 50];
const PROBED: [Family, number][] = [
  ['full', 76],
  ['full', 77],
  ['full', 80],
  ['full', 81],
  ['lean', 122],
  ['lean', 123],
];
const SAMPLES = Number(process.env.E2E_SCALE_SAMPLES ?? 200);
const PROBE_SAMPLES = Number(process.env.E2E_SCALE_PROBE_SAMPLES ?? 50);
/** Each size's bindings are narrowed to namespaces labelled SCALE=<n>. */
const SCALE = 'e2e-scale';
const BASE_NS = 'scale-base';

interface Row {
  family: Family;
  n: number;
  /** `policy -o json`: its exit code and what it wrote to stderr (a refusal or a warning). */
  cli: { code: number | null; stderr: string };
  size: PolicySize;
  clientSide: Applied;
  serverSide?: Applied;
  samples?: number;
  p50?: { plain: number; none: number; one: number };
  errors?: number;
}
interface Applied {
  ok: boolean;
  output: string;
}

let kas: ApiServer;
const rows: Row[] = [];

beforeAll(async () => {
  if (!applies) return;
  kas = await ApiServer.start();
  await namespace(kas, BASE_NS);
}, 60_000);

afterAll(() => {
  if (!applies) return;
  kas?.stop();
  const ms = (x: number | undefined) => (x === undefined ? '' : x.toFixed(2));
  const table = [
    `policy mode at scale on kube-apiserver ${kas.version} (p50 ms; added = over the plain pod in the same loop)`,
    '| N | policy | bytes (JSON) | lines | largest object | CEL expressions | longest expression | kubectl apply | apply --server-side | samples | plain | asks none (added) | asks one (added) | errors |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) =>
      [
        r.family === 'lean' ? `${r.n} (lean)` : r.n,
        r.cli.code === 0 ? (r.cli.stderr ? 'warns' : 'ok') : 'refuses',
        r.size.bytes,
        r.size.lines,
        r.size.largest.bytes,
        r.size.expressions,
        r.size.longestExpression.chars,
        r.clientSide.ok ? 'accepted' : 'refused',
        r.serverSide ? (r.serverSide.ok ? 'accepted' : 'refused') : '',
        r.samples ?? '',
        ms(r.p50?.plain),
        r.p50 ? `${ms(r.p50.none)} (+${ms(r.p50.none - r.p50.plain)})` : '',
        r.p50 ? `${ms(r.p50.one)} (+${ms(r.p50.one - r.p50.plain)})` : '',
        r.errors ?? '',
      ].join(' | ').replace(/^/, '| ').replace(/$/, ' |'),
    ),
    ...rows.flatMap((r) => [
      ...(r.cli.stderr ? [`N=${r.n} ${r.family}, policy: ${r.cli.stderr.trim()}`] : []),
      ...[r.clientSide, r.serverSide].filter((a): a is Applied => !!a && (!a.ok || /warning/i.test(a.output))).map((a) => `N=${r.n} ${r.family}, kubectl: ${limitLines(a.output)}`),
    ]),
  ].join('\n');
  process.stderr.write(`${table}\n`);
  if (process.env.E2E_SCALE_OUT) writeFileSync(process.env.E2E_SCALE_OUT, JSON.stringify({ date: new Date().toISOString(), server: kas.version, rows }, null, 2));
});

/** The refusal's reasons without the expressions they quote (each is up to hundreds of KB). */
const limitLines = (output: string) => [...new Set(output.match(/[\w.[\]]+: (Too long: [^,\]]+|Invalid value: "(?:[^"\\]|\\.)*": compilation failed: ERROR: <input>:-1:0: [^,\]]+)/g) ?? [])].map((l) => l.replace(/Invalid value: "(?:[^"\\]|\\.)*": /, '')).join('; ') || output.trim().slice(0, 500);

const configYaml = (family: Family, n: number) => (family === 'lean' ? leanConfigYaml(n) : scaleConfigYaml(n));

/**
 * `policy -o json` for the config, as the CLI prints it (or refuses it), and the objects: the CLI's, or
 * where it refuses, the same compiled without the check, for the API server to answer itself.
 */
async function compiled(family: Family, n: number): Promise<{ cli: Row['cli']; items: PolicyObject[] }> {
  const file = join(kas.dir, `scale-${family}-${n}.yaml`);
  writeFileSync(file, configYaml(family, n));
  const out = await runCli(['policy', '--config', file, '-o', 'json']);
  const cli = { code: out.code, stderr: out.stderr };
  if (out.code === 0) return { cli, items: (JSON.parse(out.stdout) as { items: PolicyObject[] }).items };
  const config = parseConfigText(configYaml(family, n), file);
  if (!config.ok) throw new Error(config.errors.join('\n'));
  const unchecked = compilePolicy(config.compiled, 'sidecar-injector', { major: 1, minor: 36 }, { apiServerLimits: false });
  if (!unchecked.ok) throw new Error(`policy refused ${n} profiles for another reason: ${unchecked.problems.join('\n')}`);
  return { cli, items: unchecked.objects };
}

/** kubectl's answer (stdout and stderr, warnings included) and whether it exited 0. */
function kubectl(args: string[], input: string): Applied {
  try {
    return { ok: true, output: kas.kubectl(args, input) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? e.message}` };
  }
}

const injectedWith = (p: Pod, profile: string) => !!p.metadata.annotations?.['sidecar-injector.io/status'] && [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === `${profile}-agent`);

/** One creation: its latency, and whether what was stored is what was expected. */
async function create(ns: string, name: string, asks: string | undefined): Promise<{ ms: number; ok: boolean }> {
  const body = pod(ns, name, asks ? { annotations: { 'sidecar-injector.io/inject': asks } } : {});
  const t = performance.now();
  const a = await kas.call('POST', `/api/v1/namespaces/${ns}/pods`, body);
  const ms = performance.now() - t;
  if (a.status !== 201) return { ms, ok: false };
  const stored = a.body as unknown as Pod;
  return { ms, ok: asks ? injectedWith(stored, asks) : !stored.metadata.annotations?.['sidecar-injector.io/status'] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Applies the config of n profiles (client-side `kubectl apply`, as the docs say; then server-side when
 * that is refused), and when in force measures `samples` of each kind of pod, interleaved.
 */
async function scale(family: Family, n: number, samples: number): Promise<Row> {
  const { cli, items } = await compiled(family, n);
  const list = { apiVersion: 'v1', kind: 'List', items };
  const size = policySize(items);
  const ns = `scale-${family}-${n}`;
  for (const o of items) (o.spec.matchResources as { namespaceSelector?: { matchExpressions: unknown[] } } | undefined)?.namespaceSelector?.matchExpressions.push({ key: SCALE, operator: 'In', values: [`${family}-${n}`] });
  const json = JSON.stringify(list);
  const row: Row = { family, n, cli, size, clientSide: kubectl(['apply', '-f', '-'], json) };
  rows.push(row);
  if (!row.clientSide.ok) {
    // What was created goes (kubectl applies object by object), then the same by server-side apply, which keeps no annotation.
    kubectl(['delete', '--ignore-not-found', '--wait', '-f', '-'], json);
    row.serverSide = kubectl(['apply', '--server-side', '--field-manager', 'sidecar-injector', '-f', '-'], json);
  }
  if (!row.clientSide.ok && !row.serverSide?.ok) {
    kubectl(['delete', '--ignore-not-found', '--wait', '-f', '-'], json);
    return row;
  }

  await namespace(kas, ns, { [SCALE]: `${family}-${n}` });
  // The profile asked for: the last odd one (overrides allowed, in the full configs), found only in this size's config.
  const asked = profileName(n % 2 === 0 ? n - 1 : n);
  let probe = 0;
  await eventually(async () => (await create(ns, `probe-${probe++}`, asked)).ok, `the policy of ${n} profiles in force`, 60_000);

  const times = { plain: [] as number[], none: [] as number[], one: [] as number[] };
  let errors = 0;
  for (let i = 0; i < samples; i++) {
    const kinds = [
      async () => times.plain.push(await ok(create(BASE_NS, `plain-${family}-${n}-${i}`, undefined))),
      async () => times.none.push(await ok(create(ns, `none-${i}`, undefined))),
      async () => times.one.push(await ok(create(ns, `one-${i}`, asked))),
    ];
    // Rotated each round, so no kind always follows another.
    for (let k = 0; k < 3; k++) await kinds[(i + k) % 3]!();
  }
  async function ok(c: Promise<{ ms: number; ok: boolean }>): Promise<number> {
    const r = await c;
    if (!r.ok) errors += 1;
    return r.ms;
  }
  Object.assign(row, { samples, errors, p50: { plain: median(times.plain), none: median(times.none), one: median(times.one) } });
  // The next size starts alone: these objects go, and their pods' namespace stays out of its bindings.
  kubectl(['delete', '--wait', '-f', '-'], json);
  return row;
}

describe('policy mode at scale', () => {
  it.each(MEASURED)('%i profiles: compiled without a word, accepted by kubectl apply, each kind of pod stored as expected', async (n) => {
    const row = await scale('full', n, SAMPLES);
    expect(row.cli).toEqual({ code: 0, stderr: '' });
    expect({ ok: row.clientSide.ok, output: limitLines(row.clientSide.output) }).toEqual({ ok: true, output: expect.any(String) });
    expect(row.errors).toBe(0);
  }, 240_000);

  it.each(PROBED)('%s config of %i profiles: policy refuses exactly what the API server refuses, naming its limit', async (family, n) => {
    const row = await scale(family, n, PROBE_SAMPLES);
    const server = row.serverSide ?? row.clientSide;
    if (row.cli.code !== 0) {
      // Refused by policy (one line per limit, exit 1): the server refuses the same objects for the same limit.
      expect(server.ok).toBe(false);
      if (/over 100000/.test(row.cli.stderr)) expect(server.output).toContain('expression code point size exceeds limit');
      if (/over 250/.test(row.cli.stderr)) expect(server.output).toContain('expression recursion limit exceeded: 250');
      expect(row.cli.stderr).toMatch(/^(sidecar-injector policy: \d+ profiles compile to a CEL expression .* over (100000|250) .*: use fewer profiles in this config, or the webhook \(injection.mode: webhook\)\n)+$/);
    } else {
      // Accepted by policy: the server accepts it (server-side apply), and client-side apply too unless policy warned.
      expect({ n, ok: server.ok, output: server.ok ? '' : limitLines(server.output) }).toEqual({ n, ok: true, output: '' });
      if (row.cli.stderr) {
        expect(row.cli.stderr).toContain('apply with `kubectl apply --server-side`');
        expect(row.clientSide.output).toContain('metadata.annotations: Too long');
      } else expect(row.clientSide.ok).toBe(true);
      expect(row.errors).toBe(0);
    }
  }, 300_000);
});
