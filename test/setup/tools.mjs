// Jest's globalSetup: the pinned tools the tests run by name (kubectl, helm, promtool) and the
// policy-eval harness, built once per machine by scripts/tools.mjs, their folders put first on
// PATH for every test worker (workers inherit this process's environment).
import { dirname, delimiter } from 'node:path';
import { tool } from '../../scripts/tools.mjs';

export default function setup() {
  const dirs = ['kubectl', 'helm', 'promtool', 'policy-eval'].map((name) => dirname(tool(name)));
  process.env.PATH = [...new Set(dirs), process.env.PATH].join(delimiter);
}
