/**
 * The JSON patch from the pod as received to the injected pod, as
 * fast-json-patch operations. Only `add`s: injection extends a pod and never
 * changes what is there, and this diff refuses (throws) if it ever would.
 *
 * Why not fast-json-patch's `compare`: an insert at the front of an array
 * (native sidecars before the app's init containers) comes out of it as a
 * cascade of `replace`s, and it walks the whole pod. This walk skips every
 * subtree that the mutated pod shares with the original by reference, which
 * inject() guarantees for everything it does not touch.
 */
import type { AddOperation } from 'fast-json-patch';
import fastJsonPatch from 'fast-json-patch';

const { escapePathComponent } = fastJsonPatch;

export class NonAdditiveChangeError extends Error {
  constructor(path: string, what: string) {
    super(`internal error: injection would ${what} at ${path || '/'}`);
    this.name = 'NonAdditiveChangeError';
  }
}

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function sameElement(a: Json, b: Json): boolean {
  if (a === b) return true;
  // A changed copy of a named element (a container given volumeMounts) is still that element.
  if (isObject(a) && isObject(b)) return a.name !== undefined && a.name === b.name;
  return false;
}

function diff(original: Json, mutated: Json, path: string, ops: AddOperation<Json>[]): void {
  if (original === mutated) return;
  if (Array.isArray(original) && Array.isArray(mutated)) {
    let i = 0;
    for (let j = 0; j < mutated.length; j++) {
      const item = mutated[j];
      if (i < original.length && sameElement(original[i], item)) {
        const before = original[i++];
        if (before !== item) diff(before, item, `${path}/${j}`, ops);
      } else {
        ops.push({ op: 'add', path: `${path}/${j}`, value: item });
      }
    }
    if (i < original.length) throw new NonAdditiveChangeError(`${path}/${i}`, 'remove an array element');
    return;
  }
  if (isObject(original) && isObject(mutated)) {
    // Paths are built only for what differs: most keys are shared by reference.
    let kept = 0;
    for (const key in mutated) {
      const after = mutated[key];
      if (!Object.hasOwn(original, key)) {
        ops.push({ op: 'add', path: `${path}/${escapePathComponent(key)}`, value: after });
        continue;
      }
      kept++;
      const before = original[key];
      if (before !== after) diff(before, after, `${path}/${escapePathComponent(key)}`, ops);
    }
    let originalKeys = 0;
    for (const key in original) if (Object.hasOwn(original, key)) originalKeys++;
    if (kept !== originalKeys) {
      const gone = Object.keys(original).find((k) => !Object.hasOwn(mutated, k)) ?? '';
      throw new NonAdditiveChangeError(`${path}/${escapePathComponent(gone)}`, 'remove a field');
    }
    return;
  }
  if (JSON.stringify(original) !== JSON.stringify(mutated)) throw new NonAdditiveChangeError(path, 'replace a value');
}

export function additivePatch(original: Json, mutated: Json): AddOperation<Json>[] {
  const ops: AddOperation<Json>[] = [];
  diff(original, mutated, '', ops);
  return ops;
}
