/**
 * Which requests /mutate reads as JSON: what express's req.is('application/json')
 * accepted before the route bypassed express (a body, and application/json as
 * the media type in any case, with or without parameters and spaces around).
 */
import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { isJsonRequest } from '../../src/server/body.js';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('isJsonRequest', () => {
  it.each([
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON;charset=UTF-8', true],
    [' \tapplication/json\t ; x=y', true],
    ['application/json;', true],
    ['text/plain', false],
    ['application/jsonx', false],
    ['application/vnd.api+json', false],
    ['application/*', false],
    ['application/json, text/plain', false],
    ['application /json', false],
    ['', false],
  ])('Content-Type %j with a body: %s', (contentType, json) => {
    expect(isJsonRequest(request({ 'content-type': contentType, 'content-length': '2' }))).toBe(json);
  });

  it('a chunked body counts as a body', () => {
    expect(isJsonRequest(request({ 'content-type': 'application/json', 'transfer-encoding': 'chunked' }))).toBe(true);
  });

  it('no Content-Type, or no body (neither Content-Length nor Transfer-Encoding), is not JSON', () => {
    expect(isJsonRequest(request({ 'content-length': '2' }))).toBe(false);
    expect(isJsonRequest(request({ 'content-type': 'application/json' }))).toBe(false);
  });
});
