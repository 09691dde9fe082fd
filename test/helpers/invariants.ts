/** What every pod the webhook lets through must satisfy (checked independently of src/core/podcheck.ts). */
import type { V1Container, V1Pod } from '@kubernetes/client-node';

export function podInvariantViolations(pod: V1Pod): string[] {
  const out: string[] = [];
  const spec = pod.spec!;
  const containers: V1Container[] = [...(spec.initContainers ?? []), ...spec.containers];
  const names = containers.map((c) => c.name);
  const dupNames = names.filter((n, i) => names.indexOf(n) !== i);
  if (dupNames.length) out.push(`duplicate container names: ${dupNames.join(', ')}`);
  const volumes = (spec.volumes ?? []).map((v) => v.name);
  const dupVolumes = volumes.filter((n, i) => volumes.indexOf(n) !== i);
  if (dupVolumes.length) out.push(`duplicate volume names: ${dupVolumes.join(', ')}`);
  for (const c of containers) {
    for (const m of c.volumeMounts ?? []) {
      if (!volumes.includes(m.name)) out.push(`${c.name} mounts missing volume ${m.name}`);
    }
  }
  const running = [...(spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'), ...spec.containers];
  const ports = running.flatMap((c) => (c.ports ?? []).map((p) => `${p.containerPort}/${p.protocol ?? 'TCP'}`));
  const dupPorts = ports.filter((p, i) => ports.indexOf(p) !== i);
  if (dupPorts.length) out.push(`duplicate containerPorts: ${dupPorts.join(', ')}`);
  return out;
}
