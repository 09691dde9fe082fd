/** The witness of what a harness started: /proc, not the harness's own handles. */
import { readdirSync, readFileSync } from 'node:fs';

/** Pids of the processes whose command line names DIR. */
export function processesNaming(dir: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dir}/`);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
