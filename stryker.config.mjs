/**
 * Mutation testing of the pure core (npm run mutation; not in CI: it takes
 * tens of minutes). StrykerJS changes src/core one mutant at a time and runs
 * the core's tests; a mutant that no test notices is a behaviour no test pins.
 * Patches are applied with rfc6902 here (PATCH_ENGINE=rfc6902) to keep the
 * run bounded: kubectl per case would multiply it; property runs are fewer
 * (PROPERTY_RUNS). The score is in the README.
 */
export default {
  testRunner: 'jest',
  testRunnerNodeArgs: ['--experimental-vm-modules'],
  // The files that decide, build and check the pod; string literals (messages) are not mutated.
  mutate: ['src/core/{decide,inject,overrides,podcheck,selector,patch,quantity,defaults,admit,match-conditions,scope}.ts'],
  mutator: { excludedMutations: ['StringLiteral'] },
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    // The generated-table test compares file text, which Stryker's sandbox prefixes with @ts-nocheck.
    config: { roots: ['<rootDir>/test/core', '<rootDir>/test/config'], testPathIgnorePatterns: ['core-v1-schema'] },
    enableFindRelatedTests: false,
  },
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutMS: 20000,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
