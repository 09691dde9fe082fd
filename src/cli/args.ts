/**
 * Flag parsing shared by the commands: node's parseArgs in strict mode (an
 * unknown flag is an error), and each flag's environment variable
 * (SIDECAR_INJECTOR_ + upper snake case) as the fallback. A flag wins.
 */
import { parseArgs } from 'node:util';
import { parseKubeVersion, type KubeVersion } from '../core/kube-version.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  default?: string | boolean;
  /** Read SIDECAR_INJECTOR_<NAME> when the flag is absent. */
  env?: boolean;
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;
export type ParsedFlags = Record<string, string | boolean | string[] | undefined>;

export class UsageError extends Error {}

export function envName(flag: string): string {
  return `SIDECAR_INJECTOR_${flag.replace(/-/g, '_').toUpperCase()}`;
}

export function parseFlags(
  specs: FlagSpecs,
  argv: string[],
  env: Readonly<Record<string, string | undefined>>,
  allowPositionals = false,
): { flags: ParsedFlags; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals,
      options: Object.fromEntries(
        Object.entries(specs).map(([name, s]) => [
          name,
          { type: s.type, ...(s.multiple ? { multiple: true } : {}), ...(s.short ? { short: s.short } : {}) },
        ]),
      ),
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const flags = { ...parsed.values } as ParsedFlags;
  for (const [name, s] of Object.entries(specs)) {
    if (flags[name] !== undefined) continue;
    const fromEnv = s.env ? env[envName(name)] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') {
      flags[name] = s.type === 'boolean' ? ['1', 'true', 'yes'].includes(fromEnv.toLowerCase()) : fromEnv;
    } else if (s.default !== undefined) {
      flags[name] = s.default;
    }
  }
  return { flags, positionals: parsed.positionals };
}

export function intFlag(flags: ParsedFlags, name: string, min: number, max: number): number {
  const raw = String(flags[name]);
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw new UsageError(`--${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
  return n;
}

export function flagHelp(specs: FlagSpecs): string {
  return Object.entries(specs)
    .map(([name, s]) => {
      const arg = s.type === 'string' ? ` ${name === 'file' ? 'FILE' : 'VALUE'}` : '';
      const left = `  ${s.short ? `-${s.short}, ` : ''}--${name}${arg}`;
      const extra = [s.default !== undefined && s.default !== false ? `default ${String(s.default)}` : '', s.env ? `env ${envName(name)}` : '']
        .filter(Boolean)
        .join('; ');
      return `${left.padEnd(30)} ${s.help}${extra ? ` (${extra})` : ''}`;
    })
    .join('\n');
}

/** `--kube-version X.Y`; undefined when not given. */
export function kubeVersionFlag(raw: string | undefined): KubeVersion | undefined {
  if (raw === undefined) return undefined;
  const version = parseKubeVersion(raw);
  if (!version) throw new UsageError(`--kube-version: expected a Kubernetes version such as 1.30, got "${raw}"`);
  return version;
}

/** `--audit-interval 10m`: 1h, 30m, 90s, 1h30m, or bare seconds; undefined when not given or 0. At least 10 s. */
export function durationFlag(name: string, raw: string | undefined, minSeconds = 10): number | undefined {
  if (raw === undefined || raw === '' || raw === '0') return undefined;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(raw);
  const seconds = /^\d+$/.test(raw) ? Number(raw) : m && raw !== '' ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : NaN;
  if (!Number.isFinite(seconds) || seconds < minSeconds) throw new UsageError(`--${name}: expected a duration of at least ${minSeconds}s such as 10m or 1h, got "${raw}"`);
  return seconds * 1000;
}
