/**
 * Tenant profiles refused at write (SPEC 9, issue 30): judgeProfile
 * (tenant-profile.ts) compiled into a ValidatingAdmissionPolicy on
 * SidecarProfiles, so that the API server itself refuses a bad profile on
 * CREATE and UPDATE with the words judgeProfile would use. The limits
 * (allowedRegistries, maxResources) are constants of the CEL: new limits are
 * a new policy (kube/profile-policy-writer.ts). Pure.
 *
 * Shape: the variable `lines` holds every problem of the profile, one per
 * line, each exactly `formatProblem(problem)`, in judgeProfile's order; one
 * validation per rule (`listLength`, below, then TENANT_RULES) fails when a
 * line ends with `(rule R)`, and its messageExpression joins those lines with
 * "; " and names the other rules broken: the API server answers with the
 * first failing validation only (k8s.io/apiserver
 * pkg/admission/plugin/policy/validating/dispatcher.go).
 *
 * CEL as the API server compiles a new expression: on 1.30, the environment
 * of compatibility version 1.29 (k8s.io/apiserver pkg/cel/environment/base.go:
 * optionals, the quantity, regex and lists libraries, strings v2). Nothing
 * newer: no lists.range, flatten, sort, two-variable comprehensions or
 * cel.bind. So indexes come from a constant list (a list longer than
 * MAX_LIST_ITEMS is refused, rule `listLength`), a value is bound by mapping a
 * one-item list, lists of lines are joined rather than flattened, and map keys
 * are ordered by rank. Each check is a record (path, words, the value shown)
 * and one expression writes them all, so the policy stays small enough to
 * compile quickly.
 *
 * Input of any shape is judged without an evaluation error (with
 * failurePolicy Fail an error refuses, in the error's words): every field is
 * read through `?.` and type tests, and a wrong type as judgeProfile reads it
 * (objectAt, listAt). Values are shown as judgeProfile's `shown` shows them
 * (JSON, cut at 60 code points) for strings, numbers, booleans, null and lists
 * or maps of those; deeper values are shown as `[…]` / `{…}`.
 *
 * Quantities: quantity.ts's grammar, then Kubernetes' quantity library
 * (isQuantity(), quantity(), isGreaterThan(), which call
 * resource.ParseQuantity and Quantity.Cmp: k8s.io/apiserver
 * pkg/cel/library/quantity.go), as compareQuantities does. But ParseQuantity
 * never returns for `1e-2147483647`, comparing `1e2147483646` panics (with
 * 500m) or never returns (with 1) (k8s.io/apimachinery v0.36.3), and near
 * ±1000 either takes milliseconds that CEL's cost does not count; a tenant
 * writes these strings. Where the exponent
 * passes ±100 the value is decided here instead, by quantity.ts's steps (int32
 * exponents, the int64Amount fast path, rounding up to nano), which need no
 * big number there: it is 0, or 1n, or above any ceiling under 1e30 (a larger
 * ceiling is refused at compile time). A quantity longer than
 * MAX_QUANTITY_LENGTH is refused as no quantity (the CRD should bound it).
 */
import { CEILING_RESOURCES } from './config.js';
import { atLeast, type KubeVersion } from './kube-version.js';
import type { PolicyObject } from './policy.js';
import { compareQuantities } from './quantity.js';
import { TENANT_RULES, TENANT_VOLUME_SOURCES, type ProfileLimits, type TenantRule } from './tenant-profile.js';

/** ValidatingAdmissionPolicy v1: GA and on in 1.30 (admissionregistration.k8s.io/v1). */
export const PROFILE_POLICY_SINCE: KubeVersion = { major: 1, minor: 30 };

/** The SidecarProfile API (SPEC 9; src/config/sidecar-profile.ts, which core does not import). */
export const SIDECAR_PROFILES = { group: 'sidecar-injector.io', version: 'v1alpha1', resource: 'sidecarprofiles', kind: 'SidecarProfile' } as const;

/** The objects' name: `<name>-sidecarprofiles`, policy and binding alike. */
export const profilePolicyName = (name: string): string => `${name}-sidecarprofiles`;

/** Items of a list the policy reads (containers, init containers, volumes, ports, image override prefixes): more is refused. */
export const MAX_LIST_ITEMS = 64;
/** Longer quantities are refused as no quantity rather than handed to ParseQuantity. */
export const MAX_QUANTITY_LENGTH = 64;
/** ParseQuantity is not called beyond this exponent, which allows ceilings below MAX_CEILING. */
const SAFE_EXPONENT = 100n;
const MAX_CEILING = '1e30';

/** The policy's own rule: a list longer than MAX_LIST_ITEMS cannot be read whole (not one of TENANT_RULES). */
export const LIST_LENGTH_RULE = 'listLength';
export type ProfilePolicyRule = TenantRule | typeof LIST_LENGTH_RULE;

export type ProfilePolicyResult = { ok: true; objects: PolicyObject[] } | { ok: false; problems: string[] };

/** A CEL string literal (JSON's escapes are CEL's). */
const str = (s: string): string => JSON.stringify(s);
/** `body` with `v` bound to `expr`: a one-item list, mapped (it costs a list or two: used off the common path). */
const bind = (expr: string, v: string, body: string): string => `[${expr}].map(${v}, ${body})[0]`;
/**
 * The value at `fields` under the map `base`, null when absent; a step that is not a map holds nothing (judgeProfile's
 * objectAt). Selections and type tests only, which cost a unit each.
 */
function sel(base: string, fields: readonly string[]): string {
  const optional = (f: string, i: number) => `${[base, ...fields.slice(0, i)].join('.')}.?${f}.orValue(null)`;
  const steps = fields.slice(0, -1).map((f, i) => `type(${optional(f, i)}) == map`);
  const last = fields.map(optional).at(-1) ?? base;
  return steps.length === 0 ? last : `(${steps.join(' && ')} ? ${last} : null)`;
}
/** judgeProfile's objectAt and listAt at `fields` under `base`: anything else is {} / []. */
const objectAt = (base: string, fields: readonly string[]) => `(type(${sel(base, fields)}) == map ? ${[base, ...fields].join('.')} : {})`;
const listAt = (base: string, fields: readonly string[]) => `(type(${sel(base, fields)}) == list ? ${[base, ...fields].join('.')} : [])`;
/** The value of the field named by the string `key` of the map `m`, null when absent. */
const fieldNamed = (m: string, key: string): string => `(${key} in ${m} ? ${m}[${key}] : null)`;
/** Go's int32(x) on an int: quantity.go keeps exponents and scales in int32 and lets them wrap. */
const int32 = (x: string): string => `(((${x}) % 4294967296 + 4294967296 + 2147483648) % 4294967296 - 2147483648)`;
/** Indexes 0 … n-1 (`v`: the comprehension's variable) of the constant list, 2 × MAX_LIST_ITEMS long (two checks per port). */
const below = (n: string, v: string): string => `variables.idx.filter(${v}, ${v} < ${n})`;

/** JSON.stringify's escapes (the characters below U+0020, `"` and `\`), looked up per character. */
function jsonEscapes(): string {
  const named: Record<string, string> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };
  const entries: string[] = [];
  for (let c = 0; c < 0x20; c += 1) {
    const ch = String.fromCharCode(c);
    entries.push(`${str(ch)}: ${str(named[ch] ?? `\\u${c.toString(16).padStart(4, '0')}`)}`);
  }
  entries.push(`${str('"')}: ${str('\\"')}`, `${str('\\')}: ${str('\\\\')}`);
  return `{${entries.join(', ')}}`;
}

/** The string `s` as JSON; only its first 60 characters, since `shown` keeps 59 of them. Escaped per character only where needed. */
function jsonString(s: string): string {
  const cut = `(size(${s}) > 60 ? ${s}.substring(0, 60) : ${s})`;
  const escaped = bind(cut, 'js', 'js.split("").map(ch, ch in variables.jsonEscapes ? variables.jsonEscapes[ch] : ch).join("")');
  return `"\\"" + (${cut}.matches(${str('[\\x00-\\x1f"\\\\]')}) ? ${escaped} : ${cut}) + "\\""`;
}
/** A number, boolean, null or string as JSON; a list or map inside a value as `[…]` / `{…}`. */
const jsonScalar = (e: string): string =>
  `(type(${e}) == string ? ${jsonString(e)} : type(${e}) == bool || type(${e}) == int || type(${e}) == uint || type(${e}) == double ? string(${e}) : ${e} == null ? "null" : type(${e}) == list ? (size(${e}) == 0 ? "[]" : "[…]") : (size(${e}) == 0 ? "{}" : "{…}"))`;
/** A list of strings in order: by rank (no sort() before 1.34). */
const sorted = (list: string): string => bind(list, 'ks', `${below('size(ks)', 'r')}.map(r, ks.filter(k, size(ks.filter(x, x < k)) == r)[0])`);
/** judgeProfile's `shown` of `v` (a selection): JSON, cut at 60 characters (code points, as CEL's size() counts); map keys in Go's order. */
function shown(v: string): string {
  const composite = `type(${v}) == string ? ${jsonString(v)} : type(${v}) == list ? "[" + ${v}.map(e, ${jsonScalar('e')}).join(",") + "]" : "{" + ${sorted(`${v}.map(k, k)`)}.map(k, ${jsonString('k')} + ":" + ${jsonScalar(`${v}[k]`)}).join(",") + "}"`;
  return `(type(${v}) == bool || type(${v}) == int || type(${v}) == uint || type(${v}) == double ? string(${v}) : ${v} == null ? "null" : ${bind(composite, 't', 'size(t) > 60 ? t.substring(0, 59) + "…" : t')})`;
}

/**
 * A problem as a record in a list, [] when `cond` is false: its path (CEL), the words before the value (CEL), the
 * value (CEL; none: not shown) and the words after it. `lines` writes records as formatProblem does.
 */
function check(cond: string, path: string, before: string, value: string | undefined, after: string, rule: TenantRule): string {
  return `(${cond} ? [${record(path, before, value, after, rule)}] : [])`;
}
const record = (path: string, before: string, value: string | undefined, after: string, rule: TenantRule): string =>
  `{"p": dyn(${path}), "a": dyn(${before}), "v": dyn(${value ?? 'null'}), "s": dyn(${value !== undefined}), "z": dyn(${str(`${after} (rule ${rule})`)})}`;
/** Records as lines. */
const format = (records: string): string => `${records}.map(r, r.p + ": " + r.a + (r.s ? ${shown('r.v')} : "") + r.z)`;

/** quantity.ts's grammar (no sign), as policy.ts's QUANTITY_RE, shorter. */
const QUANTITY_RE = '^(\\d+\\.?\\d*|\\.\\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\\d+)?$';

/**
 * "ok", "above" or "notq" for the string `q` against the ceiling `c` (CEL), as withinCeiling judges it.
 * compareQuantities is Kubernetes' ParseQuantity and Cmp, called where the exponent is within ±SAFE_EXPONENT,
 * and otherwise decided step by step as quantity.ts takes them: the exponent must fit int64 (strconv.ParseInt)
 * and is truncated to int32; a value of at most 18 digits whose scale `int32(e - len(fraction))` is -9 or more
 * is int64Amount (with |e| > 100 and at most 64 characters that scale is above 38: above any ceiling);
 * otherwise the inf.Dec scale is `int32(len(fraction) + int32(-e))`: negative is above any ceiling (at least
 * 1e39), above 100 rounds up to 1n, which no ceiling is below. A mantissa of zeros is 0 whatever the exponent.
 */
function quantityVerdict(q: string, c: string): string {
  const safe = `(isQuantity(${q}) ? (quantity(${q}).isGreaterThan(quantity(${c})) ? "above" : "ok") : "notq")`;
  const negative = 'qp[1].startsWith("-")';
  const fits = `size(qd) < 19 || size(qd) == 19 && qd <= (${negative} ? "9223372036854775808" : "9223372036854775807")`;
  const fraction = '(qp[0].contains(".") ? qp[0].split(".")[1] : "")';
  const whole = 'qp[0].split(".")[0]';
  const digits = `(${whole}.find("[1-9][0-9]*") == "" ? 1 : size(${whole}.find("[1-9][0-9]*"))) + size(${fraction})`;
  const huge = `${digits} <= 18 && ${int32(`qe - size(${fraction})`)} >= -9 || ${int32(`size(${fraction}) + ${int32('-qe')}`)} < 0`;
  const byExponent = bind(
    int32(`int((${negative} ? "-" : "") + (qd == "" ? "0" : qd))`),
    'qe',
    `qe >= ${-SAFE_EXPONENT} && qe <= ${SAFE_EXPONENT} ? ${safe} : qp[0].matches("^[0.]*$") ? "ok" : (${huge}) ? "above" : "ok"`,
  );
  return [
    `size(${q}) > ${MAX_QUANTITY_LENGTH} || !${q}.matches(${str(QUANTITY_RE)}) ? "notq" :`,
    `!${q}.matches("[eE][+-]?[0-9]+$") ? ${safe} :`,
    bind(`${q}.lowerAscii().split("e")`, 'qp', bind('qp[1].find("[1-9][0-9]*")', 'qd', `!(${fits}) ? "notq" : ${byExponent}`)),
  ].join(' ');
}

/** imageAllowed (image-registry.ts): a registry prefix matches at a path boundary. */
const imageAllowed = (image: string, registries: readonly string[]): string =>
  `[${registries.map(str).join(', ')}].exists(r, ${image}.startsWith(r) && (r.endsWith("/") || r.endsWith(":") || size(${image}) == size(r) || ${image}.substring(size(r), size(r) + 1) in ["/", ":", "@"]))`;

const SECCOMP_TYPES = ['RuntimeDefault', 'Localhost'];
const APPARMOR_TYPES = ['RuntimeDefault', 'Localhost'];
const SELINUX_TYPES = ['container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
/** Probes and lifecycle handlers, as paths under the container, in judgeContainer's order. */
const HANDLERS = [['livenessProbe'], ['readinessProbe'], ['startupProbe'], ['lifecycle', 'postStart'], ['lifecycle', 'preStop']];

/**
 * Every check of judgeContainer on the container `x` (the `containers` variable's entries: at, c, sc, rs, ps), as
 * a list of records, in judgeContainer's order within each rule.
 */
function containerRecords(limits: ProfileLimits): string {
  const registries = limits.allowedRegistries;
  const at = (suffix: string) => `x.at + ${str(suffix)}`;
  const sc = (suffix: string) => at(`.securityContext${suffix}`);
  const inSc = (...fields: string[]) => sel('x.sc', fields);
  const parts: string[] = [];
  if (registries.length > 0) {
    const image = sel('x.c', ['image']);
    parts.push(check(`type(${image}) == string && !${imageAllowed('x.c.image', registries)}`, at('.image'), '"image "', 'x.c.image', ` is not from an allowed registry (${registries.join(', ')})`, 'allowedRegistries'));
  }
  const resources = resourceRecords(limits);
  if (resources) parts.push(resources);
  const mustBe = (f: string, required: boolean, rule: TenantRule) =>
    `(${inSc(f)} == ${required} ? [] : ${inSc(f)} != null ? [${record(sc(`.${f}`), str(`must be ${required}, not `), `x.sc.${f}`, '', rule)}] : [${record(sc(`.${f}`), str(`required: must be ${required}`), undefined, '', rule)}])`;
  const [privileged, add, drop, seccomp, appArmor, appArmorType, procMount, hostProcess] = [
    inSc('privileged'),
    inSc('capabilities', 'add'),
    inSc('capabilities', 'drop'),
    inSc('seccompProfile', 'type'),
    inSc('appArmorProfile'),
    inSc('appArmorProfile', 'type'),
    inSc('procMount'),
    inSc('windowsOptions', 'hostProcess'),
  ];
  const seLinux = (f: string) => inSc('seLinuxOptions', f);
  parts.push(
    check(`${privileged} != null && ${privileged} != false`, sc('.privileged'), '"must be false or unset, not "', 'x.sc.privileged', '', 'privileged'),
    check(`${add} != null && !(type(${add}) == list && size(${add}) == 0)`, sc('.capabilities.add'), '"must be empty, not "', 'x.sc.capabilities.add', ': tenant profiles add no capabilities', 'addedCapabilities'),
    `(type(${drop}) == list && "ALL" in ${drop} ? [] : ${drop} != null ? [${record(sc('.capabilities.drop'), '"must include \\"ALL\\", not "', 'x.sc.capabilities.drop', '', 'capabilities_restricted')}] : [${record(sc('.capabilities.drop'), '"required: must include \\"ALL\\""', undefined, '', 'capabilities_restricted')}])`,
    mustBe('allowPrivilegeEscalation', false, 'allowPrivilegeEscalation'),
    mustBe('runAsNonRoot', true, 'runAsNonRoot'),
    check(`${inSc('runAsUser')} == 0`, sc('.runAsUser'), '"must not be 0 (root)"', undefined, '', 'runAsUser'),
    `(${seccomp} in ${JSON.stringify(SECCOMP_TYPES)} ? [] : ${seccomp} != null ? [${record(sc('.seccompProfile.type'), '"must be RuntimeDefault or Localhost, not "', 'x.sc.seccompProfile.type', '', 'seccompProfile_restricted')}] : [${record(sc('.seccompProfile.type'), '"required: must be RuntimeDefault or Localhost"', undefined, '', 'seccompProfile_restricted')}])`,
    // shown(undefined) is "undefined" (JSON.stringify gives undefined, then String()).
    `(${appArmor} == null || ${appArmorType} in ${JSON.stringify(APPARMOR_TYPES)} ? [] : type(${appArmor}) == map && has(x.sc.appArmorProfile.type) ? [${record(sc('.appArmorProfile.type'), '"must be RuntimeDefault or Localhost, not "', 'x.sc.appArmorProfile.type', '', 'appArmorProfile')}] : [${record(sc('.appArmorProfile.type'), '"must be RuntimeDefault or Localhost, not undefined"', undefined, '', 'appArmorProfile')}])`,
    check(`${inSc('seLinuxOptions')} != null && ${seLinux('type')} != null && !(${seLinux('type')} in ${JSON.stringify(['', ...SELINUX_TYPES])})`, sc('.seLinuxOptions.type'), str(`must be ${SELINUX_TYPES.join(', ')} or empty, not `), 'x.sc.seLinuxOptions.type', '', 'seLinuxOptions'),
    ...['user', 'role'].map((k) => check(`${seLinux(k)} != null && ${seLinux(k)} != ""`, sc(`.seLinuxOptions.${k}`), '"must be empty, not "', `x.sc.seLinuxOptions.${k}`, '', 'seLinuxOptions')),
    check(`${procMount} != null && ${procMount} != "Default"`, sc('.procMount'), '"must be Default or unset, not "', 'x.sc.procMount', '', 'procMount_restricted'),
    check(`${hostProcess} != null && ${hostProcess} != false`, sc('.windowsOptions.hostProcess'), '"must be false or unset, not "', 'x.sc.windowsOptions.hostProcess', '', 'windowsHostProcess'),
  );
  // Two checks per port, in order (hostPort, hostIP), read by index only when one is set.
  const hostPort = (p: string) => `${p}.?hostPort.orValue(null) != null && ${p}.hostPort != 0`;
  const hostIP = (p: string) => `${p}.?hostIP.orValue(null) != null && ${p}.hostIP != ""`;
  const port = 'x.ps[t / 2]';
  const portPath = (f: string) => `x.at + ".ports[" + string(t / 2) + "].${f}"`;
  parts.push(
    `(x.ps.exists(p, type(p) == map && (${hostPort('p')} || ${hostIP('p')})) ? ${below('2 * size(x.ps)', 't')}.filter(t, type(${port}) == map && (t % 2 == 0 ? ${hostPort(port)} : ${hostIP(port)})).map(t, t % 2 == 0 ? ${record(portPath('hostPort'), '"must be 0 or unset, not "', `${port}.hostPort`, ': tenant profiles use no host ports', 'hostPorts')} : ${record(portPath('hostIP'), '"must be empty, not "', `${port}.hostIP`, ': tenant profiles use no host ports', 'hostPorts')}) : [])`,
  );
  for (const handler of HANDLERS) {
    for (const action of ['httpGet', 'tcpSocket']) {
      const host = sel('x.c', [...handler, action, 'host']);
      parts.push(check(`${host} != null && ${host} != ""`, at(`.${handler.join('.')}.${action}.host`), '"must be empty, not "', `x.c.${handler.join('.')}.${action}.host`, ': probes and hooks reach the pod, not another host', 'hostProbesAndHostLifecycle'));
    }
  }
  return parts.join(' + ');
}

/** judgeResources on the container `x`: for each capped resource its limit, then its request. */
function resourceRecords(limits: ProfileLimits): string | undefined {
  const capped = CEILING_RESOURCES.flatMap((r) => {
    const ceiling = limits.maxResources[r];
    return ceiling === undefined ? [] : ['limits', 'requests'].map((w) => `{"r": ${str(r)}, "c": ${str(ceiling)}, "w": ${str(w)}}`);
  });
  if (capped.length === 0) return undefined;
  const rule = 'maxResources';
  const path = 'x.at + ".resources." + k.w + "." + k.r';
  const value = `(k.w in x.rs && type(x.rs[k.w]) == map && k.r in x.rs[k.w] ? x.rs[k.w][k.r] : null)`;
  const judged = bind(
    'type(qv) == string ? qv : type(qv) == int || type(qv) == uint || type(qv) == double ? string(qv) : ""',
    'qs',
    bind(
      quantityVerdict('qs', 'k.c'),
      'verdict',
      `verdict == "ok" ? [] : verdict == "above" ? [${record(path, 'qs + " is above the ceiling " + k.c', undefined, '', rule)}] : [${record(path, '"must be a quantity of at most " + k.c + ", not "', 'qv', '', rule)}]`,
    ),
  );
  // Per entry a list of at most one record; joined by filter and map (no flatten() before 1.34).
  const problems = `[${capped.join(', ')}].map(k, ${bind(value, 'qv', `qv == null ? (k.w == "limits" ? [${record(path, '"required: a " + k.r + " limit of at most " + k.c', undefined, '', rule)}] : []) : ${judged}`)})`;
  return `${problems}.filter(l, size(l) > 0).map(l, l[0])`;
}

/** The spec's own host fields (judgeProfile's first checks) and the image override prefixes (its last), as records. */
function specRecords(limits: ProfileLimits): string {
  const registries = limits.allowedRegistries;
  const parts = [
    `["hostNetwork", "hostPID", "hostIPC"].filter(k, ${fieldNamed('variables.spec', 'k')} != null && variables.spec[k] != false).map(k, ${record('"spec." + k', '"must be false or unset, not "', 'variables.spec[k]', ": tenant profiles never share the host's namespaces", 'hostNamespaces')})`,
  ];
  if (registries.length > 0) {
    const ir = listAt('variables.spec', ['overrides', 'imageRegistries']);
    parts.push(
      bind(
        ir,
        'ir',
        `${below('size(ir)', 'j')}.filter(j, type(ir[j]) == string && !${imageAllowed('ir[j]', registries)}).map(j, ${record('"spec.overrides.imageRegistries[" + string(j) + "]"', '"image overrides from "', 'ir[j]', ` could leave the allowed registries (${registries.join(', ')})`, 'allowedRegistries')})`,
      ),
    );
  }
  return parts.join(' + ');
}

/** judgeVolume: hostPath, and any source not in TENANT_VOLUME_SOURCES, per volume ({at, bad}: its sources refused, in key order). */
const VOLUME_LINES = `variables.volumes.map(v, v.bad.map(k, v.at + "." + k + ": " + (k == "hostPath" ? ${str('hostPath volumes are not allowed in tenant profiles (rule hostPathVolumes)')} : k + ${str(
  ` volumes are not allowed in tenant profiles (allowed: ${TENANT_VOLUME_SOURCES.join(', ')}) (rule volumeKinds)`,
)})).join("\\n")).filter(s, s != "").join("\\n")`;

/** The lists read by index, each refused when longer than the policy reads. */
function listLengthLines(limits: ProfileLimits): string {
  const over = (list: string, path: string) => `(size(${list}) > ${MAX_LIST_ITEMS} ? ${path} + ": " + string(size(${list})) + ${str(` items; at most ${MAX_LIST_ITEMS} can be judged at write (rule ${LIST_LENGTH_RULE})`)} : "")`;
  const items = [
    over('variables.rawContainers', '"spec.containers"'),
    over('variables.rawInitContainers', '"spec.initContainers"'),
    over('variables.rawVolumes', '"spec.volumes"'),
    `variables.containers.map(x, ${over('x.ps', 'x.at + ".ports"')}).filter(s, s != "").join("\\n")`,
  ];
  if (limits.allowedRegistries.length > 0) items.push(over(listAt('variables.spec', ['overrides', 'imageRegistries']), '"spec.overrides.imageRegistries"'));
  return `[${items.join(', ')}].filter(s, s != "").join("\\n")`;
}

/**
 * What the policy cannot judge as judgeProfile does, each with its config path: a ceiling is parsed by the API
 * server at every evaluation (quantity()), so it must be safe to parse (at most MAX_QUANTITY_LENGTH characters,
 * an exponent within ±SAFE_EXPONENT) and below MAX_CEILING.
 */
function refusals(limits: ProfileLimits): string[] {
  const out: string[] = [];
  for (const r of CEILING_RESOURCES) {
    const ceiling = limits.maxResources[r];
    if (ceiling === undefined) continue;
    const exponent = /[eE]([+-]?\d+)$/.exec(ceiling)?.[1];
    if (ceiling.length > MAX_QUANTITY_LENGTH || (exponent !== undefined && (BigInt(exponent) > SAFE_EXPONENT || BigInt(exponent) < -SAFE_EXPONENT))) {
      out.push(`tenantProfiles.maxResources.${r}: ${ceiling} cannot be checked at write, the API server's quantity parser is not safe there (write it with at most ${MAX_QUANTITY_LENGTH} characters and an exponent within ±${SAFE_EXPONENT})`);
    } else if ((compareQuantities(ceiling, MAX_CEILING) ?? 1) >= 0) {
      out.push(`tenantProfiles.maxResources.${r}: a ceiling of ${MAX_CEILING} or more cannot be checked at write (the API server's quantity parser is not safe that far)`);
    }
  }
  return out;
}

/** The rules the policy checks, in its validations' order: listLength (the others read no further), then TENANT_RULES (those the limits make). */
function rulesOf(limits: ProfileLimits): ProfilePolicyRule[] {
  const rules = (Object.keys(TENANT_RULES) as TenantRule[]).filter(
    (r) => !(r === 'allowedRegistries' && limits.allowedRegistries.length === 0) && !(r === 'maxResources' && CEILING_RESOURCES.every((c) => limits.maxResources[c] === undefined)),
  );
  return [LIST_LENGTH_RULE, ...rules];
}

/** A message within the API server's 5 KiB (celconfig.MaxEvaluatedMessageExpressionSizeBytes), else the first problem and a count. */
const MESSAGE_BYTES = 4000;

function messageExpression(rule: ProfilePolicyRule): string {
  const others = `(size(variables.brokenRules) > 1 ? "; other rules broken: " + variables.brokenRules.filter(n, n != ${str(rule)}).join(", ") : "")`;
  const short = bind(
    `variables.${rule}.split("\\n")`,
    'ls',
    `(size(ls[0]) > 900 ? ls[0].substring(0, 900) + "…" : ls[0]) + (size(ls) > 1 ? "; and " + string(size(ls) - 1) + ${str(` more problems of rule ${rule}`)} : "") + ${others}`,
  );
  return bind(`variables.${rule}.replace("\\n", "; ") + ${others}`, 'm', `size(bytes(m)) <= ${MESSAGE_BYTES} ? m : ${short}`);
}

/**
 * The policy and its binding (`<name>-sidecarprofiles`, validationActions Deny) for the limits; no objects
 * before 1.30 (no ValidatingAdmissionPolicy v1: the caller says so); refused for a ceiling it cannot check.
 */
export function compileProfilePolicy(limits: ProfileLimits, name: string, version: KubeVersion): ProfilePolicyResult {
  if (!atLeast(version, PROFILE_POLICY_SINCE)) return { ok: true, objects: [] };
  const refused = refusals(limits);
  if (refused.length > 0) return { ok: false, problems: refused };

  const rules = rulesOf(limits);
  const entries = (raw: string, path: string) =>
    `${below(`size(${raw})`, 'i')}.map(i, ${bind(
      `type(${raw}[i]) == map ? ${raw}[i] : {}`,
      'c',
      `{"at": dyn(${str(path)} + "[" + string(i) + "]"), "c": dyn(c), "sc": dyn(${objectAt('c', ['securityContext'])}), "rs": dyn(${objectAt('c', ['resources'])}), "ps": dyn(${listAt('c', ['ports'])})}`,
    )})`;
  const volumeSources = `v.filter(k, k != "name" && v[k] != null && !(k in ${JSON.stringify(TENANT_VOLUME_SOURCES)}))`;
  const variables = [
    { name: 'spec', expression: 'has(object.spec) && type(object.spec) == map ? object.spec : {}' },
    { name: 'idx', expression: `[${Array.from({ length: 2 * MAX_LIST_ITEMS }, (_, i) => i).join(', ')}]` },
    { name: 'jsonEscapes', expression: jsonEscapes() },
    ...[
      ['rawContainers', 'containers'],
      ['rawInitContainers', 'initContainers'],
      ['rawVolumes', 'volumes'],
    ].map(([name = '', f = '']) => ({ name, expression: listAt('variables.spec', [f]) })),
    // Containers, then init containers, as judgeProfile walks them: {at: the path, c: the container, sc, rs, ps: its securityContext, resources and ports}.
    { name: 'containers', expression: `${entries('variables.rawContainers', 'spec.containers')} + ${entries('variables.rawInitContainers', 'spec.initContainers')}` },
    // Volumes: {at, bad: the sources refused (set, other than name, not allowed), in the order the API server encodes them}.
    {
      name: 'volumes',
      expression: `${below('size(variables.rawVolumes)', 'i')}.map(i, ${bind(
        'type(variables.rawVolumes[i]) == map ? variables.rawVolumes[i] : {}',
        'v',
        `{"at": dyn("spec.volumes[" + string(i) + "]"), "bad": dyn(size(${volumeSources}) < 2 ? ${volumeSources} : ${sorted(volumeSources)})}`,
      )})`,
    },
    // Every problem, one per line, in judgeProfile's order within each rule: containers and init containers, volumes, then the spec's own fields and override prefixes.
    {
      name: 'lines',
      expression: `[variables.containers.map(x, ${format(`(${containerRecords(limits)})`)}.join("\\n")).filter(s, s != "").join("\\n"), ${VOLUME_LINES}, ${format(`(${specRecords(limits)})`)}.join("\\n"), ${listLengthLines(limits)}].filter(s, s != "").join("\\n").split("\\n")`,
    },
    ...rules.map((rule) => ({ name: rule, expression: `variables.lines.filter(l, l.endsWith(${str(` (rule ${rule})`)})).join("\\n")` })),
    { name: 'brokenRules', expression: `[${rules.map((rule) => `variables.${rule} != "" ? ${str(rule)} : ""`).join(', ')}].filter(n, n != "")` },
  ];
  const labels = { 'app.kubernetes.io/managed-by': 'sidecar-injector' };
  const policyName = profilePolicyName(name);
  const apiVersion = 'admissionregistration.k8s.io/v1';
  return {
    ok: true,
    objects: [
      {
        apiVersion,
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: policyName, labels },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [{ apiGroups: [SIDECAR_PROFILES.group], apiVersions: [SIDECAR_PROFILES.version], operations: ['CREATE', 'UPDATE'], resources: [SIDECAR_PROFILES.resource] }],
          },
          // An update that leaves the spec alone (labels, finalizers: a profile being deleted) is not judged again:
          // the limits may have changed since it was written, and its status condition says so (SPEC 9).
          matchConditions: [
            { name: 'sidecar-injector-spec-written', expression: 'request.operation != "UPDATE" || !(has(object.spec) && has(oldObject.spec) && object.spec == oldObject.spec)' },
          ],
          variables,
          validations: rules.map((rule) => ({
            expression: `variables.${rule} == ""`,
            messageExpression: messageExpression(rule),
            message: `the SidecarProfile breaks rule ${rule}: ${rule === LIST_LENGTH_RULE ? `a list longer than ${MAX_LIST_ITEMS} items` : TENANT_RULES[rule]}`,
            reason: 'Invalid',
          })),
        },
      },
      {
        apiVersion,
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: policyName, labels },
        spec: { policyName, validationActions: ['Deny'] },
      },
    ],
  };
}
