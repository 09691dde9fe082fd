import { describe, expect, it } from '@jest/globals';
import { V1Container, V1Volume } from '@kubernetes/client-node';
import { CONTAINER_FIELDS, VOLUME_FIELDS } from '../../src/config/core-v1-fields.js';

describe('core/v1 field lists', () => {
  it("match @kubernetes/client-node's models", () => {
    expect([...CONTAINER_FIELDS]).toEqual(V1Container.attributeTypeMap.map((a) => a.baseName));
    expect([...VOLUME_FIELDS]).toEqual(V1Volume.attributeTypeMap.map((a) => a.baseName));
  });
});
