/**
 * Configs of N profiles for issue 31 (policy mode at scale), and what the
 * compiled policy weighs. Each profile is a realistic sidecar: an image, a
 * named port, cpu and memory requests and limits, an emptyDir volume it
 * mounts and the app mounts too; every other profile allows per-pod
 * overrides (image registry and resources), every other one is native.
 */
import { stringify } from 'yaml';
import type { PolicyObject } from '../../src/core/policy.js';

/** The profile names of a config of `n`: p001, p002, ... */
export const profileName = (i: number): string => `p${String(i).padStart(3, '0')}`;

export function scaleConfigYaml(n: number): string {
  const profiles: Record<string, unknown> = {};
  for (let i = 1; i <= n; i++) {
    const name = profileName(i);
    profiles[name] = {
      ...(i % 2 === 0 ? { nativeSidecar: true } : {}),
      containers: [
        {
          name: `${name}-agent`,
          image: `registry.example.com/team-${name}/agent:1.${i}.0`,
          args: ['--listen=:' + String(9000 + i), `--data=/var/run/${name}`],
          ports: [{ name: `m-${name}`, containerPort: 9000 + i }],
          resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
          volumeMounts: [{ name: `${name}-data`, mountPath: `/var/run/${name}` }],
          securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, runAsUser: 65534, capabilities: { drop: ['ALL'] } },
        },
      ],
      volumes: [{ name: `${name}-data`, emptyDir: { sizeLimit: '64Mi' } }],
      appVolumeMounts: [{ name: `${name}-data`, mountPath: `/var/run/${name}`, readOnly: true }],
      ...(i % 2 === 1 ? { overrides: { resources: true, imageRegistries: [`registry.example.com/team-${name}/`] } } : {}),
    };
  }
  return stringify({
    annotationPrefix: 'sidecar-injector.io',
    policy: 'opt-in',
    defaultProfiles: [profileName(1)],
    excludeNamespaces: ['kube-system', 'kube-public', 'kube-node-lease'],
    onConflict: 'skip',
    allowPodOptOut: true,
    profiles,
  });
}

/** The least a profile can be: one container, its name and image. Each adds little text, so the nesting limit comes before the size limit. */
export function leanConfigYaml(n: number): string {
  const profiles: Record<string, unknown> = {};
  for (let i = 1; i <= n; i++) profiles[profileName(i)] = { containers: [{ name: `${profileName(i)}-agent`, image: `registry.example.com/a:${i}` }] };
  return stringify({ policy: 'opt-in', defaultProfiles: [profileName(1)], profiles });
}

export interface PolicySize {
  /** Bytes of `JSON.stringify` of the List `policy -o json` prints (compact). */
  bytes: number;
  /** Lines of `policy -o json` (2-space indented, as printed). */
  lines: number;
  /** The largest single object, compact JSON bytes, and its name. */
  largest: { name: string; bytes: number };
  /** CEL expressions in all objects (variables, matchConditions, mutations, validations, messageExpressions). */
  expressions: number;
  longestExpression: { where: string; chars: number };
}

/** Walks every object for the fields the API server compiles as CEL. */
export function policySize(objects: readonly PolicyObject[]): PolicySize {
  const list = { apiVersion: 'v1', kind: 'List', items: objects };
  let expressions = 0;
  let longestExpression = { where: '', chars: 0 };
  const visit = (v: unknown, where: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${where}[${i}]`));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expression' || k === 'messageExpression') && typeof x === 'string') {
          expressions += 1;
          if (x.length > longestExpression.chars) longestExpression = { where: `${where}.${k}`, chars: x.length };
        } else visit(x, `${where}.${k}`);
      }
  };
  let largest = { name: '', bytes: 0 };
  for (const o of objects) {
    const name = `${o.kind}/${(o.metadata as { name: string }).name}`;
    visit(o, name);
    const bytes = Buffer.byteLength(JSON.stringify(o));
    if (bytes > largest.bytes) largest = { name, bytes };
  }
  return {
    bytes: Buffer.byteLength(JSON.stringify(list)),
    lines: JSON.stringify(list, null, 2).split('\n').length,
    largest,
    expressions,
    longestExpression,
  };
}
