/** Jest in ESM mode: ts-jest's ESM preset, run under `node --experimental-vm-modules` (see package.json "test"). */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: {
    // Sources import './x.js' (NodeNext); map to the .ts file for ts-jest.
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testTimeout: 30000,
  // kubectl, helm, promtool and the policy-eval harness at their pinned versions (scripts/tools.mjs).
  globalSetup: '<rootDir>/test/setup/tools.mjs',
};
