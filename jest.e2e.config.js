/** `npm run e2e`: the end-to-end suite against a real kube-apiserver (scripts/e2e.mjs checks KUBE_APISERVER first). */
import base from './jest.config.js';

export default {
  ...base,
  testMatch: ['**/test/e2e/**/*.e2e.ts'],
  testTimeout: 120000,
  // One API server per file; files run one at a time (they share /etc/hosts and the machine).
  maxWorkers: 1,
};
