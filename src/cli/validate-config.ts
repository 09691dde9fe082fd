/**
 * `validate-config FILE`: exit 0, or every problem with its path and exit 1.
 * Given SidecarProfile manifests instead of a config, judges each against the
 * limits of `--config` (SPEC 9), as the cluster's write-time check would.
 */
import { readFile } from 'node:fs/promises';
import type { CompiledConfig } from '../core/config.js';
import { tenantProfileKey, tenantVerdict } from '../core/tenant-profile.js';
import { BUILTIN_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { isSidecarProfileDocument } from '../config/sidecar-profile.js';
import { parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';
import { parseManifests } from './manifests.js';
import { readProfileFiles } from './sidecar-profile-files.js';

export const VALIDATE_FLAGS: FlagSpecs = {
  config: { type: 'string', env: true, help: 'with SidecarProfile files: the config whose tenantProfiles limits apply (the built-in example when absent)' },
  namespace: { type: 'string', short: 'n', default: 'default', help: 'with SidecarProfile files: namespace for documents that name none' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const VALIDATE_USAGE = `Usage: sidecar-injector validate-config FILE
       sidecar-injector validate-config [--config CONFIG] PROFILES.yaml...

Checks a config file as 'serve' would load it. Prints each problem with its
path (profiles.log-shipper.containers[0].image: required) and exits 1, or
prints the revision and exits 0.

Given files of SidecarProfiles, judges each against CONFIG's tenantProfiles
limits and the fixed floor (SPEC 9), as the cluster refuses them at write:
each problem names the profile, the field and the rule.

Example:
  sidecar-injector validate-config config/example.yaml
  sidecar-injector validate-config --config cluster.yaml examples/tenant-profiles/db-proxy.yaml`;

/** A file holds SidecarProfiles when any of its documents is one (a config never is). */
async function holdsProfiles(file: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return false; // the loader that follows says why it cannot be read
  }
  const parsed = parseManifests(text);
  return parsed.ok && parsed.docs.some((d) => isSidecarProfileDocument(d.value));
}

export async function runValidateConfig(argv: string[], io: CommandIO): Promise<number> {
  const { flags, positionals } = parseFlags(VALIDATE_FLAGS, argv, io.env, true);
  if (positionals.length === 0) throw new UsageError('validate-config takes a config FILE, or SidecarProfile files');
  const profileFiles = (await Promise.all(positionals.map(holdsProfiles))).some(Boolean);
  if (profileFiles) return validateProfiles(positionals, flags.config as string | undefined, flags.namespace as string, io);
  if (positionals.length !== 1) throw new UsageError('validate-config takes exactly one config FILE');
  const file = positionals[0] as string;
  const result = await loadConfigFile(file);
  if (!result.ok) {
    for (const e of result.errors) io.err(`${e}\n`);
    return 1;
  }
  const profiles = Object.keys(result.compiled.config.profiles);
  io.out(`${file}: valid (revision ${result.compiled.revision}; profiles: ${profiles.join(', ') || 'none'})\n`);
  return 0;
}

async function validateProfiles(files: string[], configPath: string | undefined, namespace: string, io: CommandIO): Promise<number> {
  const loaded = await loadConfigFile(configPath ?? BUILTIN_CONFIG_PATH);
  if (!loaded.ok) {
    io.err(`invalid config ${configPath ?? BUILTIN_CONFIG_PATH}:\n${loaded.errors.map((e) => `  ${e}\n`).join('')}`);
    return 1;
  }
  const read = await readProfileFiles(files, namespace);
  if (!read.ok) {
    for (const e of read.errors) io.err(`${e}\n`);
    return 1;
  }
  const compiled = loaded.compiled;
  if (!compiled.config.tenantProfiles.enabled) {
    io.err(`Warning: tenantProfiles.enabled is false in ${configPath ?? 'the built-in config'}: a cluster with it serves no SidecarProfile; judged against its limits anyway\n`);
  }
  // Judged as written, wherever they will live: which namespaces are served is the cluster's business, not the file's.
  const judging: CompiledConfig = { ...compiled, excludedNamespaces: new Set(), config: { ...compiled.config, tenantProfiles: { ...compiled.config.tenantProfiles, enabled: true, namespaceSelector: {} } } };
  let refused = 0;
  for (const t of read.profiles) {
    const key = tenantProfileKey(t.namespace, t.name);
    const verdict = tenantVerdict(t, {}, judging);
    if (verdict.accepted) {
      io.out(`${key}: accepted\n`);
      continue;
    }
    refused++;
    for (const problem of verdict.problems.length > 0 ? verdict.problems : [verdict.message]) io.err(`${key}: ${verdict.reason}: ${problem}\n`);
  }
  return refused > 0 ? 1 : 0;
}
