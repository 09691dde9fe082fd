/**
 * Which kube-apiserver the suite runs against, known before any test is
 * defined (jest decides what runs while it reads a file), from the binary's
 * own `--version`: parts that need a newer server are skipped on an older
 * one, each with its reason printed beside the file and the version, never
 * silently and never counted as passed.
 */
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { describe } from '@jest/globals';

function serverVersion(): { version: string; minor: number } {
  const binary = process.env.KUBE_APISERVER;
  if (!binary) throw new Error('KUBE_APISERVER is not set: run the suite with npm run e2e, which builds the pinned binaries (scripts/tools.mjs) and sets it');
  const out = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim(); // "Kubernetes v1.36.3"
  const m = /v(\d+)\.(\d+)\.\S*/.exec(out);
  if (!m) throw new Error(`${binary} --version printed no version: ${out}`);
  return { version: m[0], minor: Number(m[2]) };
}

export const SERVER = serverVersion();

/** What needs which server minor (1.x) with the flags of test/e2e/apiserver.ts. */
export const NEEDS = {
  // admissionregistration.k8s.io/v1 MutatingAdmissionPolicy: served by default from 1.36 (v1beta1 on 1.34–1.35 needs --runtime-config).
  mutatingAdmissionPolicy: { minor: 36, why: 'MutatingAdmissionPolicy (admissionregistration.k8s.io/v1) is served from 1.36' },
} as const;

/** `describe`, or `describe.skip` with the reason printed when the server is older than NEED (and whether it applies). */
export function describeOn(need: { minor: number; why: string }, file: string, part = 'every test'): { describe: typeof describe.skip; applies: boolean } {
  const applies = SERVER.minor >= need.minor;
  if (!applies) process.stderr.write(`SKIPPED ${basename(file)} (${part}) on kube-apiserver ${SERVER.version}: needs 1.${need.minor}+: ${need.why}\n`);
  return { describe: applies ? describe : describe.skip, applies };
}
