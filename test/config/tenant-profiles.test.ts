/**
 * `tenantProfiles` in the config (SPEC 9, issue 30): defaults that leave every
 * existing config as it was, the limits read and checked with their paths,
 * the chart's values.schema.json in step, and a SidecarProfile's spec read as
 * a config profile (validateProfileSpec).
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { BUILTIN_CONFIG_PATH, parseConfigText, revisionOf } from '../../src/config/load.js';
import { validateProfileSpec } from '../../src/config/schema.js';
import { restrictedProfile } from '../helpers/tenant-profiles.js';

const configOf = (yaml: string) => {
  const r = parseConfigText(yaml, 'cfg.yaml');
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.compiled.config;
};
const errorsOf = (yaml: string) => {
  const r = parseConfigText(yaml, 'cfg.yaml');
  if (r.ok) throw new Error('expected the config to be refused');
  return r.errors;
};

const OFF = { enabled: false, namespaceSelector: {}, allowedRegistries: [], maxResources: {} };

describe('tenantProfiles in the config', () => {
  it('absent, null or empty: off, no limits beyond the fixed floor', () => {
    expect(configOf('').tenantProfiles).toEqual(OFF);
    expect(configOf('tenantProfiles:').tenantProfiles).toEqual(OFF);
    expect(configOf('tenantProfiles: {}').tenantProfiles).toEqual(OFF);
    expect(configOf('tenantProfiles: { namespaceSelector: null, maxResources: null }').tenantProfiles).toEqual(OFF);
  });

  it('leaves the example config as it was: same revision, nothing else changed', () => {
    const text = readFileSync(BUILTIN_CONFIG_PATH, 'utf8');
    const r = parseConfigText(text, 'example.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.compiled.revision).toBe(revisionOf(parse(text)));
    expect(r.compiled.config.tenantProfiles).toEqual(OFF);
  });

  it('reads the limits as written', () => {
    const c = configOf(`
tenantProfiles:
  enabled: true
  namespaceSelector:
    matchLabels: { sidecar-injector.io/tenant-profiles: enabled }
    matchExpressions: [{ key: team, operator: Exists }]
  allowedRegistries: [registry.example.com/team/, "registry.example.com:5000/shared"]
  maxResources: { cpu: 500m, memory: 256Mi }
`);
    expect(c.tenantProfiles).toEqual({
      enabled: true,
      namespaceSelector: { matchLabels: { 'sidecar-injector.io/tenant-profiles': 'enabled' }, matchExpressions: [{ key: 'team', operator: 'Exists' }] },
      allowedRegistries: ['registry.example.com/team/', 'registry.example.com:5000/shared'],
      maxResources: { cpu: '500m', memory: '256Mi' },
    });
    // Numbers are quantities too, kept as text.
    expect(configOf('tenantProfiles: { maxResources: { cpu: 1, memory: 1e9 } }').tenantProfiles.maxResources).toEqual({ cpu: '1', memory: '1000000000' });
  });

  it('names the path of every problem', () => {
    expect(
      errorsOf(`
tenantProfiles:
  enabeld: true
  namespaceSelector: { matchLabel: { a: b }, matchExpressions: [{ key: team, operator: Has }] }
  allowedRegistries: ["", "https://registry.example.com/", 5]
  maxResources: { cpu: lots, memroy: 1Gi, memory: 0 }
`),
    ).toEqual([
      'cfg.yaml: tenantProfiles.enabeld: unknown field (did you mean enabled?)',
      'cfg.yaml: tenantProfiles.maxResources.memroy: unknown field (did you mean memory?)',
      'cfg.yaml: tenantProfiles.maxResources.cpu: must be a Kubernetes quantity such as 500m or 256Mi',
      'cfg.yaml: tenantProfiles.maxResources.memory: must be more than 0',
      'cfg.yaml: tenantProfiles.namespaceSelector.matchLabel: unknown field (did you mean matchLabels?)',
      'cfg.yaml: tenantProfiles.namespaceSelector.matchExpressions[0].operator: must be one of: In, NotIn, Exists, DoesNotExist',
      'cfg.yaml: tenantProfiles.allowedRegistries[0]: must not be empty',
      'cfg.yaml: tenantProfiles.allowedRegistries[1]: must be an image reference prefix such as registry.example.com/team/ (no scheme)',
      'cfg.yaml: tenantProfiles.allowedRegistries[2]: must be a string',
    ]);
    expect(errorsOf('tenantProfiles: { enabled: "yes" }')).toEqual(['cfg.yaml: tenantProfiles.enabled: must be a boolean']);
    expect(errorsOf('tenantProfiles: [a]')).toEqual(['cfg.yaml: tenantProfiles: must be a mapping, not a list']);
    expect(errorsOf('tenantProfiles: { allowedRegistries: registry.example.com/ }')).toEqual(['cfg.yaml: tenantProfiles.allowedRegistries: must be a list, not a string']);
    expect(errorsOf('tenantProfile: {}')).toEqual(['cfg.yaml: tenantProfile: unknown field (did you mean tenantProfiles?)']);
  });
});

describe("the chart's values.schema.json knows config.tenantProfiles", () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(new URL('../../charts/sidecar-injector/values.schema.json', import.meta.url), 'utf8')) as object);
  const defaults = parse(readFileSync(new URL('../../charts/sidecar-injector/values.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
  const withTenants = (tenantProfiles: unknown) => ({ ...defaults, config: { ...(defaults.config as object), tenantProfiles } });
  const errorsOfValues = (v: unknown) => (validate(v) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));

  it('accepts what the config accepts', () => {
    const tenantProfiles = { enabled: true, namespaceSelector: { matchLabels: { team: 'a' } }, allowedRegistries: ['registry.example.com/team/'], maxResources: { cpu: '500m', memory: 1024 } };
    expect(errorsOfValues(withTenants(tenantProfiles))).toEqual([]);
    expect(errorsOfValues(withTenants(null))).toEqual([]);
    expect(configOf(JSON.stringify({ tenantProfiles })).tenantProfiles.enabled).toBe(true);
  });

  it('refuses typos at any depth', () => {
    expect(errorsOfValues(withTenants({ enabeld: true })).join()).toContain('enabeld');
    expect(errorsOfValues(withTenants({ maxResources: { memroy: '1Gi' } })).join()).toContain('memroy');
    expect(errorsOfValues(withTenants({ namespaceSelector: { matchLabel: {} } })).join()).toContain('matchLabel');
    expect(errorsOfValues(withTenants({ allowedRegistries: 'registry.example.com/' })).join()).toContain('must be array');
  });
});

describe('validateProfileSpec: a SidecarProfile spec is a config profile', () => {
  it('accepts a profile and fills the defaults as for the config', () => {
    const r = validateProfileSpec({ containers: [{ name: 'agent', image: 'registry.example.com/team/agent:1' }] });
    expect(r).toEqual({ ok: true, profile: { nativeSidecar: false, containers: [{ name: 'agent', image: 'registry.example.com/team/agent:1' }], initContainers: [], volumes: [], appVolumeMounts: [], overrides: { resources: false, imageRegistries: [] } } });
    expect(validateProfileSpec(restrictedProfile())).toEqual({ ok: true, profile: restrictedProfile() });
  });

  it('names every problem under spec, the shapes first, then what spans fields', () => {
    expect(validateProfileSpec({ containers: [{ name: 'Agent', imagePullPolcy: 'Always' }], hostNetwork: true }).ok).toBe(false);
    expect(validateProfileSpec({ containers: [{ name: 'Agent', imagePullPolcy: 'Always' }], hostNetwork: true })).toEqual({
      ok: false,
      errors: [
        'spec.hostNetwork: unknown field',
        'spec.containers[0].imagePullPolcy: unknown field (did you mean imagePullPolicy?)',
        'spec.containers[0].name: must be a DNS label (lower case letters, digits and -)',
        'spec.containers[0].image: required',
      ],
    });
    expect(validateProfileSpec({ containers: [{ name: 'a', image: 'a', volumeMounts: [{ name: 'nowhere', mountPath: '/x' }] }] })).toEqual({
      ok: false,
      errors: ['spec.containers[0].volumeMounts[0].name: names no volume of this profile: "nowhere"'],
    });
    expect(validateProfileSpec([])).toEqual({ ok: false, errors: ['spec: must be a mapping, not a list'] });
    // Requests against limits, compared exactly (9m is 0.009), for config profiles too.
    const withResources = (requests: object, limits: object) => validateProfileSpec({ containers: [{ name: 'a', image: 'a', resources: { requests, limits } }] });
    expect(withResources({ cpu: '9m' }, { cpu: '0.009' }).ok).toBe(true);
    expect(withResources({ cpu: '10m' }, { cpu: '0.009' })).toEqual({ ok: false, errors: ['spec.containers[0].resources.requests.cpu: request 10m exceeds limit 0.009'] });
  });
});
