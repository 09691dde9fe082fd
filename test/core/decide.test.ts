import { describe, expect, it } from '@jest/globals';
import { decide, readWish } from '../../src/core/decide.js';
import { apiserverPod } from '../helpers/fixtures.js';
import { testConfig } from '../helpers/configs.js';

const noWish = apiserverPod((p) => {
  delete p.metadata!.annotations!['sidecar-injector.io/inject'];
});
const withWish = (value: string, where: 'label' | 'annotation' = 'annotation') =>
  apiserverPod((p) => {
    delete p.metadata!.annotations!['sidecar-injector.io/inject'];
    if (where === 'label') p.metadata!.labels!['sidecar-injector.io/inject'] = value;
    else p.metadata!.annotations!['sidecar-injector.io/inject'] = value;
  });

describe('readWish', () => {
  it('prefers the label over the annotation', () => {
    const pod = withWish('false', 'annotation');
    pod.metadata!.labels!['sidecar-injector.io/inject'] = 'true';
    expect(readWish(pod, 'sidecar-injector.io/inject')).toEqual({ kind: 'true' });
  });
  it('reads profile lists, trimming blanks', () => {
    expect(readWish(withWish(' proxy, metrics ,'), 'sidecar-injector.io/inject')).toEqual({ kind: 'profiles', names: ['proxy', 'metrics'] });
  });
  it('reads as CEL reads (cel-strings.ts): trimmed as Go\'s unicode.IsSpace says, lower-cased in ASCII only', () => {
    const read = (v: string) => readWish(withWish(v), 'sidecar-injector.io/inject');
    expect(read('\u00a0TRUE\u3000')).toEqual({ kind: 'true' });
    expect(read('\u0085false\u2028')).toEqual({ kind: 'false' });
    expect(read('\ufefftrue')).toEqual({ kind: 'profiles', names: ['\ufefftrue'] });
    expect(read('true\u200b')).toEqual({ kind: 'profiles', names: ['true\u200b'] });
    expect(read('\u0085proxy\u00a0,\u1680metrics\u0085,\u3000')).toEqual({ kind: 'profiles', names: ['proxy', 'metrics'] });
    expect(read('PROX\u0130')).toEqual({ kind: 'profiles', names: ['PROX\u0130'] });
    expect(read('\u0085,\u00a0')).toEqual({ kind: 'none' });
  });
  it('treats no value as no wish', () => {
    expect(readWish(noWish, 'sidecar-injector.io/inject')).toEqual({ kind: 'none' });
  });
});

describe('decide: SPEC section 5, first match wins', () => {
  const cfg = testConfig();

  it('2: skips excluded namespaces even when the pod asks, with a warning', () => {
    const d = decide(withWish('true'), 'kube-system', undefined, cfg);
    expect(d.action).toBe('skip');
    expect(d.reason).toContain('kube-system');
    expect(d.warnings[0]).toContain('excluded');
  });

  it('3: leaves a pod with the status annotation unchanged', () => {
    const pod = withWish('true');
    pod.metadata!.annotations!['sidecar-injector.io/status'] = '{}';
    expect(decide(pod, 'shop', undefined, cfg).action).toBe('unchanged');
  });

  it('4: neverInjectSelector wins over the wish and over always-inject', () => {
    const c = testConfig(`neverInjectSelector: [{ matchLabels: { app: web } }]\nalwaysInjectSelector: [{}]`);
    const d = decide(withWish('true'), 'shop', undefined, c);
    expect(d).toMatchObject({ action: 'skip', reason: 'pod matches neverInjectSelector' });
  });

  it('4: the pod may opt out, silently', () => {
    const d = decide(withWish('false'), 'shop', { 'sidecar-injector.io/injection': 'enabled' }, testConfig('policy: opt-out'));
    expect(d).toMatchObject({ action: 'skip', reason: 'pod opted out', warnings: [] });
  });

  it('4: with allowPodOptOut false the opt-out is ignored with a warning and the rules go on', () => {
    const d = decide(withWish('false'), 'shop', undefined, testConfig('allowPodOptOut: false\npolicy: opt-out'));
    expect(d.action).toBe('inject');
    expect(d.warnings.join()).toContain('allowPodOptOut');
  });

  it('5: true selects defaultProfiles', () => {
    expect(decide(withWish('true'), 'shop', undefined, cfg)).toMatchObject({ action: 'inject', profiles: ['log-shipper'] });
  });

  it('5: a list selects those profiles; unknown names warn and are dropped; duplicates collapse', () => {
    const d = decide(withWish('proxy,nope,proxy,metrics'), 'shop', undefined, cfg);
    expect(d).toMatchObject({ action: 'inject', profiles: ['proxy', 'metrics'] });
    expect(d.warnings).toEqual(['unknown sidecar profile "nope" ignored']);
  });

  it('5: only unknown names: the rules go on as if there were no wish', () => {
    expect(decide(withWish('nope'), 'shop', undefined, cfg).action).toBe('skip');
    const d = decide(withWish('nope'), 'shop', { 'sidecar-injector.io/injection': 'enabled' }, cfg);
    expect(d).toMatchObject({ action: 'inject', profiles: ['log-shipper'] });
  });

  it('5: a label can carry a single profile name', () => {
    expect(decide(withWish('proxy', 'label'), 'shop', undefined, cfg)).toMatchObject({ action: 'inject', profiles: ['proxy'] });
  });

  it('6: alwaysInjectSelector selects defaultProfiles', () => {
    const c = testConfig(`alwaysInjectSelector: [{ matchExpressions: [{ key: app, operator: In, values: [web] }] }]`);
    expect(decide(noWish, 'shop', undefined, c)).toMatchObject({ action: 'inject', profiles: ['log-shipper'] });
  });

  it('7: namespace label enabled injects, disabled skips (even under opt-out)', () => {
    expect(decide(noWish, 'shop', { 'sidecar-injector.io/injection': 'enabled' }, cfg).action).toBe('inject');
    const d = decide(noWish, 'shop', { 'sidecar-injector.io/injection': 'disabled' }, testConfig('policy: opt-out'));
    expect(d).toMatchObject({ action: 'skip', reason: 'namespace shop has injection disabled' });
  });

  it('8: opt-out injects, opt-in skips without warning a pod that did not ask', () => {
    expect(decide(noWish, 'shop', undefined, testConfig('policy: opt-out')).action).toBe('inject');
    const d = decide(noWish, 'shop', undefined, cfg);
    expect(d).toMatchObject({ action: 'skip', warnings: [] });
  });

  it('uses the configured annotation prefix', () => {
    const c = testConfig('annotationPrefix: inject.example.org');
    const pod = apiserverPod((p) => {
      p.metadata!.annotations = { 'inject.example.org/inject': 'true' };
    });
    expect(decide(pod, 'shop', undefined, c).action).toBe('inject');
    expect(decide(withWish('true'), 'shop', undefined, c).action).toBe('skip');
  });

  it('a wish for defaults with no defaultProfiles skips with a reason', () => {
    const c = testConfig('defaultProfiles: []');
    const d = decide(withWish('true'), 'shop', undefined, c);
    expect(d).toMatchObject({ action: 'skip', reason: 'no defaultProfiles are configured' });
  });
});
