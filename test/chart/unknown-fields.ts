/**
 * Unknown fields in a Kubernetes object, found with client-node's models
 * (every field's name and type, from the Kubernetes OpenAPI schema).
 * kubectl's default --validate=strict refuses such fields, and the API server
 * drops them otherwise; the JSON schemas of kubernetes-models allow them.
 */
import * as k8s from '@kubernetes/client-node';

type Attr = { baseName: string; type: string };
type Model = { getAttributeTypeMap(): Attr[] };
const models = k8s as unknown as Record<string, Model | undefined>;

function check(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => check(v, array[1]!, `${path}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [k, v] of Object.entries(value as object)) check(v, map[1]!, `${path}.${k}`, out);
    return;
  }
  const model = models[type];
  if (!model?.getAttributeTypeMap || typeof value !== 'object') return;
  const attrs = model.getAttributeTypeMap();
  for (const [k, v] of Object.entries(value as object)) {
    const attr = attrs.find((a) => a.baseName === k);
    if (!attr) out.push(`${path}.${k}`);
    else check(v, attr.type, `${path}.${k}`, out);
  }
}

/** Paths of fields the kind's schema does not have; undefined when client-node has no model for the kind (CRDs). */
export function unknownFields(doc: { kind: string } & Record<string, unknown>): string[] | undefined {
  const type = `V1${doc.kind}`;
  if (!models[type]?.getAttributeTypeMap) return undefined;
  const out: string[] = [];
  check(doc, type, doc.kind, out);
  return out;
}
