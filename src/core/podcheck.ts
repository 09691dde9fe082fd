/**
 * The pod checked as a whole: the collisions that would make the API server
 * reject it or its containers fail (names, the shared port space, mounts).
 * Injection is refused when the injected pod has a problem the original did
 * not, so a pod that was already broken is not blamed on us.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';

export function podProblems(pod: V1Pod): string[] {
  const problems: string[] = [];
  const spec = pod.spec;
  if (!spec) return problems;
  const volumes = new Set<string>();
  for (const v of spec.volumes ?? []) {
    if (volumes.has(v.name)) problems.push(`volume name "${v.name}" is used twice`);
    volumes.add(v.name);
  }

  const names = new Map<string, string>();
  const ports = new Map<string, string>();
  const all: [string, V1Container[] | undefined][] = [
    ['initContainers', spec.initContainers],
    ['containers', spec.containers],
    ['ephemeralContainers', spec.ephemeralContainers as V1Container[] | undefined],
  ];
  for (const [list, containers] of all) {
    for (const c of containers ?? []) {
      if (names.has(c.name)) problems.push(`container name "${c.name}" is used twice`);
      names.set(c.name, list);
      // Containers and native sidecars run together in one network namespace; plain init containers run alone.
      const concurrent = list === 'containers' || (list === 'initContainers' && c.restartPolicy === 'Always');
      if (concurrent) {
        for (const p of c.ports ?? []) {
          const key = `${p.containerPort}/${p.protocol ?? 'TCP'}`;
          const owner = ports.get(key);
          if (owner !== undefined) problems.push(`containerPort ${key} is used by both "${owner}" and "${c.name}"`);
          else ports.set(key, c.name);
        }
      }
      const paths = new Set<string>();
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name)) problems.push(`container "${c.name}" mounts "${m.name}", which is no volume of the pod`);
        if (paths.has(m.mountPath)) problems.push(`container "${c.name}" mounts two volumes at ${m.mountPath}`);
        paths.add(m.mountPath);
      }
    }
  }
  return problems;
}

/** Problems of `mutated` that `original` did not have. */
export function newProblems(original: V1Pod, mutated: V1Pod): string[] {
  const after = podProblems(mutated);
  if (after.length === 0) return after; // the usual case: no need to look at the original
  const before = new Set(podProblems(original));
  return after.filter((p) => !before.has(p));
}
