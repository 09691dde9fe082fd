import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
// @ts-expect-error: a plain .mjs build script, without type declarations
import { coreV1Table, render } from '../../scripts/gen-core-v1-schema.mjs';

describe('the generated core/v1 table', () => {
  it("is what the generator makes now from @kubernetes/client-node's models (npm run gen:core-v1 after an upgrade)", async () => {
    const committed = readFileSync(new URL('../../src/config/core-v1-schema.ts', import.meta.url), 'utf8');
    expect(committed).toBe((render as (t: unknown) => string)(await (coreV1Table as () => Promise<unknown>)()));
  });
});
