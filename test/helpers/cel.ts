/** Webhook matchConditions evaluated by a real CEL implementation (@bufbuild/cel), as the API server hands them the pod. */
import { isCelError, run } from '@bufbuild/cel';
import type { V1Pod } from '@kubernetes/client-node';
import type { MatchCondition } from '../../src/core/match-conditions.js';

/** The API server hands CEL the object as maps: plain JSON objects become Maps here. */
const toCel = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(toCel) : v !== null && typeof v === 'object' ? new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)])) : v;

/** Whether every condition holds for the pod; a condition that errs or is not a boolean throws. */
export function conditionsHold(conditions: readonly MatchCondition[], pod: V1Pod): boolean {
  return conditions.every((c) => {
    const result = run(c.expression, { object: toCel(pod) as never });
    if (isCelError(result)) throw new Error(`${c.name}: ${String(result)}`);
    if (typeof result !== 'boolean') throw new Error(`${c.name}: not a boolean: ${String(result)}`);
    return result;
  });
}
