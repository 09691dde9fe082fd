/** `validate-config FILE`: exit 0, or every problem with its path and exit 1. */
import { loadConfigFile } from '../config/load.js';
import { parseFlags, UsageError, type FlagSpecs } from './args.js';
import type { CommandIO } from './io.js';

export const VALIDATE_FLAGS: FlagSpecs = {
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const VALIDATE_USAGE = `Usage: sidecar-injector validate-config FILE

Checks a config file as 'serve' would load it. Prints each problem with its
path (profiles.log-shipper.containers[0].image: required) and exits 1, or
prints the revision and exits 0.

Example:
  sidecar-injector validate-config config/example.yaml`;

export async function runValidateConfig(argv: string[], io: CommandIO): Promise<number> {
  const { positionals } = parseFlags(VALIDATE_FLAGS, argv, io.env, true);
  if (positionals.length !== 1) throw new UsageError('validate-config takes exactly one FILE');
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
