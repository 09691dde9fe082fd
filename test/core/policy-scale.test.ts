/**
 * The policy at scale (issue 31): `compilePolicy` refuses what the API
 * server would refuse at write, before `kubectl apply` does, one line per
 * limit with what to do. The limits are cel-go's parser defaults, which
 * k8s.io/apiserver v0.36.3 keeps (100,000 code points, rule nesting 250);
 * the boundaries asserted here (80/81 full profiles, 122/123 lean ones) are
 * where kube-apiserver 1.36.3 itself starts refusing
 * (test/e2e/policy-scale.e2e.ts compares the two on the same configs).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { celExprDepth, compilePolicy, CEL_EXPRESSION_CODE_POINTS, CEL_RECURSION_DEPTH } from '../../src/core/policy.js';
import { compile } from '../helpers/configs.js';
import { runCli } from '../helpers/process.js';
import { leanConfigYaml, policySize, scaleConfigYaml } from '../helpers/scale-configs.js';

const V136 = { major: 1, minor: 36 };
const compileN = (yaml: string, options?: { apiServerLimits?: boolean }) => compilePolicy(compile(yaml), 'sidecar-injector', V136, options);

/** byProfile's shape: `(p == "a0" ? 0 : (p == "a1" ? 1 : ... 0))`, k levels. */
const chain = (k: number) => Array.from({ length: k }, (_, i) => i).reduceRight((rest, i) => `(p == "a${i}" ? ${i} : ${rest})`, '0');

describe('celExprDepth: the nesting cel-go counts', () => {
  it('one for the expression, one more inside each non-empty bracket and each ternary else branch', () => {
    expect(celExprDepth('a')).toBe(1);
    expect(celExprDepth('f(a)')).toBe(2);
    expect(celExprDepth('[] + {} + f()')).toBe(1);
    expect(celExprDepth('a ? b : c')).toBe(2);
    expect(celExprDepth('{"k": v}')).toBe(2);
    expect(celExprDepth('x.map(p, [p])')).toBe(3);
    // cel-go refuses 125 levels of this shape and accepts 124 ("expression recursion limit exceeded: 250").
    expect(celExprDepth(chain(124))).toBe(249);
    expect(celExprDepth(chain(125))).toBe(251);
  });

  it('brackets, quotes and question marks inside string literals do not count', () => {
    expect(celExprDepth(`"((([[[? :" + '{{{"' + """)))'"'""" + r'\\(' + "\\"("`)).toBe(1);
    expect(celExprDepth(`f("(", ')')`)).toBe(2);
  });

  it('a long chain of + at one level does not nest', () => {
    expect(celExprDepth(Array.from({ length: 200 }, () => '[1]').join(' + '))).toBe(2);
  });
});

describe('compilePolicy: the API server\'s limits on CEL expressions', () => {
  it('50 profiles: compiled, every expression within both limits', () => {
    const r = compileN(scaleConfigYaml(50));
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const size = policySize(r.objects);
    expect(size.longestExpression.chars).toBeLessThanOrEqual(CEL_EXPRESSION_CODE_POINTS);
    expect(size.expressions).toBeGreaterThan(700);
  });

  it('80 profiles compile; 81 are refused in one line naming the 100,000-character limit and what to do', () => {
    expect(compileN(scaleConfigYaml(80)).ok).toBe(true);
    const r = compileN(scaleConfigYaml(81));
    expect(r).toEqual({
      ok: false,
      problems: [
        `81 profiles compile to a CEL expression of 100688 characters (MutatingAdmissionPolicy sidecar-injector-namespaces: spec.mutations[0].jsonPatch.expression); the API server refuses one over ${CEL_EXPRESSION_CODE_POINTS} (cel-go's parser limit, which k8s.io/apiserver keeps): use fewer profiles in this config, or the webhook (injection.mode: webhook)`,
      ],
    });
  });

  it('122 lean profiles compile; 123 are refused in one line naming the nesting limit of 250 (each profile nests 2)', () => {
    expect(compileN(leanConfigYaml(122)).ok).toBe(true);
    const r = compileN(leanConfigYaml(123));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(new RegExp(`^123 profiles compile to a CEL expression nested 252 deep \\(MutatingAdmissionPolicy sidecar-injector-namespaces: spec\\.mutations\\[0\\]\\.jsonPatch\\.expression\\); the API server refuses one over ${CEL_RECURSION_DEPTH} .*: use fewer profiles in this config, or the webhook \\(injection\\.mode: webhook\\)$`));
  });

  it('both limits broken: one line each', () => {
    const r = compileN(scaleConfigYaml(130));
    expect(r.ok ? [] : r.problems.map((p) => /over (\d+)/.exec(p)?.[1])).toEqual(['100000', '250']);
  });

  it('apiServerLimits: false compiles it anyway (for a test that shows the API server\'s own refusal)', () => {
    expect(compileN(scaleConfigYaml(81), { apiServerLimits: false }).ok).toBe(true);
  });
});

describe('`policy` at scale', () => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-scale-'));
  const file = (n: number) => {
    const f = join(dir, `scale-${n}.yaml`);
    writeFileSync(f, scaleConfigYaml(n));
    return f;
  };

  it('refuses 81 profiles before kubectl apply would: the line on stderr, nothing on stdout, exit 1', async () => {
    const out = await runCli(['policy', '--config', file(81), '-o', 'json']);
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^sidecar-injector policy: 81 profiles compile to a CEL expression of 100688 characters .* over 100000 .*: use fewer profiles in this config, or the webhook \(injection\.mode: webhook\)\n$/);
  });

  it('77 profiles: printed, with a warning per object too large for client-side kubectl apply\'s annotation', async () => {
    const out = await runCli(['policy', '--config', file(77), '-o', 'json']);
    expect(out.code).toBe(0);
    expect((JSON.parse(out.stdout) as { items: unknown[] }).items).toHaveLength(8);
    expect(out.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^sidecar-injector policy: warning: MutatingAdmissionPolicy sidecar-injector-namespaces is \d+ bytes as kubectl writes it: .* 262144-byte limit on annotations; apply with `kubectl apply --server-side`$/),
      expect.stringMatching(/^sidecar-injector policy: warning: MutatingAdmissionPolicy sidecar-injector is \d+ bytes as kubectl writes it: /),
    ]);
  });

  it('76 profiles: printed without a word', async () => {
    const out = await runCli(['policy', '--config', file(76), '-o', 'json']);
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' });
  });
});
