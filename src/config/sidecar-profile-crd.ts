/**
 * The SidecarProfile CustomResourceDefinition (SPEC 9), built from the same
 * core/v1 table the config is validated with (core-v1-schema.ts) and the
 * descriptions generated beside it (core-v1-docs.ts), so that the API server
 * accepts the shapes `validate-config` accepts and `kubectl explain
 * sidecarprofile.spec.containers` explains them. `sidecar-injector crds`
 * prints it; the chart ships the same bytes in crds/ (npm run gen:crds).
 *
 * The schema is structural, as apiextensions.k8s.io/v1 requires
 * (k8s.io/apiextensions-apiserver pkg/apiserver/schema/validation.go): every
 * node has a type except int-or-string and free-form nodes, no $ref (each
 * core/v1 type is inlined where it is used), no types inside anyOf but the
 * int-or-string pair. Mapping the table's shapes:
 * - `number` is `integer`: every number in the pod's core/v1 tree is an int32
 *   or int64 (test/cli/crds.test.ts checks client-node's formats);
 * - `IntOrString` is x-kubernetes-int-or-string (probe ports);
 * - `map` is a map of strings, except resources' requests and limits
 *   (core/v1 ResourceList: quantities), int-or-string as the config accepts
 *   `cpu: 1` and `cpu: 500m`;
 * - `any` (timestamps and managedFields of a PVC template's metadata) is
 *   x-kubernetes-preserve-unknown-fields, unchecked as in the config.
 * Required fields are core/v1's. The profile's lists whose names must be
 * unique (containers and initContainers, volumes: the config refuses
 * duplicates, and core/v1 PodSpec declares them `+listType=map
 * +listMapKey=name`) are list maps, so the API server refuses a duplicate at
 * write and server-side apply merges them by name.
 *
 * The rules (the fixed floor, the cluster's limits) are not here: they are
 * the ValidatingAdmissionPolicy's and core/tenant-profile.ts's.
 */
import { CORE_V1_DOCS } from './core-v1-docs.js';
import { CORE_V1_TYPES } from './core-v1-schema.js';
import { SIDECAR_PROFILE_GROUP, SIDECAR_PROFILE_KIND, SIDECAR_PROFILE_PLURAL, SIDECAR_PROFILE_VERSION } from './sidecar-profile.js';

/** An OpenAPI v3 schema node as apiextensions.k8s.io/v1 JSONSchemaProps writes it (the subset used here). */
export interface JSONSchemaProps {
  description?: string;
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean';
  format?: string;
  enum?: string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  additionalProperties?: JSONSchemaProps;
  items?: JSONSchemaProps;
  anyOf?: JSONSchemaProps[];
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'map' | 'set';
  'x-kubernetes-list-map-keys'?: string[];
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/** Short name and category: `kubectl get scp`, `kubectl get sidecar-injector`. Neither is a built-in resource's (test/e2e/tenant-api.e2e.ts asks a real server). */
export const SIDECAR_PROFILE_SHORT_NAME = 'scp';
export const SIDECAR_PROFILE_CATEGORY = 'sidecar-injector';
export const SIDECAR_PROFILE_CRD_NAME = `${SIDECAR_PROFILE_PLURAL}.${SIDECAR_PROFILE_GROUP}`;

/** core/v1 ResourceList fields: quantities by resource name. */
const QUANTITY_MAPS: Readonly<Record<string, readonly string[]>> = {
  V1ResourceRequirements: ['limits', 'requests'],
  V1VolumeResourceRequirements: ['limits', 'requests'],
};

const INT_OR_STRING: JSONSchemaProps = { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true };

/** The description of a field: its own, else that of its type (client-node drops a field's text where it names a type). */
function describe(owner: string, field: string, shape: string): string | undefined {
  const own = CORE_V1_DOCS[owner]?.fields[field];
  if (own !== undefined) return own;
  return CORE_V1_DOCS[shape.replace(/^(\[\])+/, '')]?.description;
}

const withDescription = (description: string | undefined, schema: JSONSchemaProps): JSONSchemaProps => (description === undefined ? schema : { description, ...schema });

/** The schema of a value of the table's SHAPE (a scalar word, `map`, `[]` + shape, or a core/v1 type name). */
function shapeSchema(shape: string, owner: string, field: string): JSONSchemaProps {
  if (shape.startsWith('[]')) return { type: 'array', items: shapeSchema(shape.slice(2), owner, field) };
  switch (shape) {
    case 'string':
      return { type: 'string' };
    case 'boolean':
      return { type: 'boolean' };
    case 'number':
      return { type: 'integer' };
    case 'IntOrString':
      return { ...INT_OR_STRING };
    case 'map':
      return { type: 'object', additionalProperties: QUANTITY_MAPS[owner]?.includes(field) ? { ...INT_OR_STRING } : { type: 'string' } };
    case 'any':
      return { 'x-kubernetes-preserve-unknown-fields': true };
    default:
      return typeSchema(shape);
  }
}

/** A core/v1 object type, its fields inlined (no $ref in a structural schema). */
function typeSchema(type: string): JSONSchemaProps {
  const fields = CORE_V1_TYPES[type];
  if (fields === undefined) throw new Error(`core-v1-schema.ts has no type ${type}`);
  const properties: Record<string, JSONSchemaProps> = {};
  for (const [field, shape] of Object.entries(fields)) properties[field] = withDescription(describe(type, field, shape), shapeSchema(shape, type, field));
  const required = CORE_V1_DOCS[type]?.required;
  return { type: 'object', properties, ...(required && required.length > 0 ? { required: [...required] } : {}) };
}

const listOf = (type: string, description: string, key?: string): JSONSchemaProps => ({
  description,
  type: 'array',
  items: typeSchema(type),
  ...(key ? { 'x-kubernetes-list-type': 'map' as const, 'x-kubernetes-list-map-keys': [key] } : {}),
});

/** spec: exactly a profile of SPEC 4 (schema.ts readProfile: the same six fields). */
function specSchema(): JSONSchemaProps {
  return {
    description:
      "The profile, exactly as a profile under `profiles` in the injector's config (docs/configuration.md): sidecar containers, init containers, their volumes, the mounts added to the app's containers, and what a pod's annotations may override. Served to pods of this namespace that ask for it by name (annotation sidecar-injector.io/inject), while its Accepted condition is True.",
    type: 'object',
    properties: {
      nativeSidecar: {
        // true, false or "auto": a boolean or a string, which a structural schema cannot say;
        // the config schema (validateProfileSpec) and the admission policy check it.
        description:
          'true, false or "auto". true: the containers are injected as native sidecars (init containers with restartPolicy Always, Kubernetes 1.29+); false: as regular containers; auto: native where the API server supports them. Default false.',
        'x-kubernetes-preserve-unknown-fields': true,
      },
      containers: listOf('V1Container', 'Sidecar containers (core/v1 Container), added to every pod that asks for the profile; names must be unique in the profile.', 'name'),
      initContainers: listOf('V1Container', 'Init containers (core/v1 Container), added before the pod\'s own; names must be unique in the profile.', 'name'),
      volumes: listOf('V1Volume', "Volumes (core/v1 Volume) the profile's containers and the app's mounts use, e.g. an emptyDir shared with the app; names must be unique.", 'name'),
      appVolumeMounts: listOf('V1VolumeMount', "Mounts (core/v1 VolumeMount) added to every app container (not to the app's init containers), naming volumes of this profile."),
      overrides: {
        description: "What a pod's annotations may change in this profile's containers; nothing unless listed.",
        type: 'object',
        properties: {
          resources: { description: 'true: a pod may set the containers\' requests and limits by annotation (e.g. <container>.cpu-request).', type: 'boolean' },
          imageRegistries: {
            description: 'A pod may override a container\'s image only with an image under one of these prefixes (e.g. registry.example.com/team/); empty forbids image overrides.',
            type: 'array',
            items: { type: 'string' },
          },
        },
      },
    },
  };
}

/** status.conditions: metav1.Condition, as its markers in k8s.io/apimachinery pkg/apis/meta/v1/types.go constrain it. */
function statusSchema(): JSONSchemaProps {
  return {
    description: 'What the injector made of the profile, written by the injector through the status subresource.',
    type: 'object',
    properties: {
      conditions: {
        description:
          'Accepted: True when the profile is served to pods that ask for it; False with a reason (Invalid, OutsideLimits, Shadowed, NotServed) and a message naming each field and the rule it breaks. observedGeneration is the metadata.generation judged.',
        type: 'array',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
        items: {
          type: 'object',
          required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
          properties: {
            type: { description: 'The condition, in CamelCase: Accepted.', type: 'string', minLength: 1, maxLength: 316 },
            status: { description: 'True, False or Unknown.', type: 'string', enum: ['True', 'False', 'Unknown'] },
            observedGeneration: { description: 'The metadata.generation of the profile this condition was set for.', type: 'integer', format: 'int64', minimum: 0 },
            lastTransitionTime: { description: 'When status last changed.', type: 'string', format: 'date-time' },
            reason: { description: 'Why, in one CamelCase word for programs.', type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
            message: { description: 'Why, for people.', type: 'string', maxLength: 32768 },
          },
        },
      },
    },
  };
}

export function sidecarProfileCrd(): CustomResourceDefinition {
  const accepted = '.status.conditions[?(@.type=="Accepted")]';
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: SIDECAR_PROFILE_CRD_NAME, labels: { 'app.kubernetes.io/name': 'sidecar-injector', 'app.kubernetes.io/component': 'crd' } },
    spec: {
      group: SIDECAR_PROFILE_GROUP,
      names: {
        kind: SIDECAR_PROFILE_KIND,
        listKind: `${SIDECAR_PROFILE_KIND}List`,
        plural: SIDECAR_PROFILE_PLURAL,
        singular: SIDECAR_PROFILE_KIND.toLowerCase(),
        shortNames: [SIDECAR_PROFILE_SHORT_NAME],
        categories: [SIDECAR_PROFILE_CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: SIDECAR_PROFILE_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          // The server's table converter prints a path's first match only (apiextensions-apiserver
          // pkg/registry/customresource/tableconvertor): Containers shows the first container's name.
          additionalPrinterColumns: [
            { name: 'Accepted', type: 'string', jsonPath: `${accepted}.status`, description: 'Whether the profile is served (the Accepted condition).' },
            { name: 'Reason', type: 'string', jsonPath: `${accepted}.reason`, description: "The Accepted condition's reason.", priority: 1 },
            { name: 'Containers', type: 'string', jsonPath: '.spec.containers[*].name', description: "The profile's first sidecar container." },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              description:
                "SidecarProfile: a namespace's own sidecar profile, served by sidecar-injector to pods of its namespace that ask for it by name, inside the limits the cluster's administrators set in the injector's config (tenantProfiles).",
              type: 'object',
              properties: {
                apiVersion: { description: 'The versioned schema of this object: sidecar-injector.io/v1alpha1.', type: 'string' },
                kind: { description: 'SidecarProfile.', type: 'string' },
                metadata: { type: 'object' },
                spec: specSchema(),
                status: statusSchema(),
              },
            } satisfies JSONSchemaProps,
          },
        },
      ],
    },
  };
}
