/** Reading a config file: YAML text -> validated, compiled config, or every error with its path. */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { compileConfig, type CompiledConfig } from '../core/config.js';
import { readOne, type FileRead } from '../ops/watch.js';
import { validateConfig } from './schema.js';

/** The example config shipped with the package, used when no --config is given. */
export const BUILTIN_CONFIG_PATH = fileURLToPath(new URL('../../config/example.yaml', import.meta.url));

export type ConfigResult = { ok: true; compiled: CompiledConfig } | { ok: false; errors: string[] };

/** JSON with sorted keys, so the revision ignores comments, key order and formatting. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function revisionOf(parsed: unknown): string {
  return createHash('sha256').update(canonicalJson(parsed)).digest('hex').slice(0, 16);
}

/** Parses and validates config text; `source` names the file in messages. */
export function parseConfigText(text: string, source: string): ConfigResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
    };
  }
  const parsed: unknown = doc.toJS({ maxAliasCount: 100 });
  if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
    return { ok: false, errors: [`${source}: (root): must be a mapping of settings`] };
  }
  const result = validateConfig(parsed);
  if (!result.ok) return { ok: false, errors: result.errors.map((e) => `${source}: ${e}`) };
  return { ok: true, compiled: compileConfig(result.config, revisionOf(parsed ?? {})) };
}

/** A config file already read (the watcher's bytes: what was compared is what is loaded). */
export function configOf(file: FileRead): ConfigResult {
  if ('error' in file) return { ok: false, errors: [`${file.path}: cannot read: ${file.error}`] };
  return parseConfigText(file.bytes.toString('utf8'), file.path);
}

export async function loadConfigFile(path: string): Promise<ConfigResult> {
  return configOf(await readOne(path));
}
