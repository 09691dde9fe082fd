/** A broken server must not post a fast number: its answers are checked over TLS, with the CA, before it is measured. */
import { request } from 'node:https';
import { bodyTemplate, type PayloadName } from './payloads.js';
import type { Server } from './servers.js';

function post(url: string, ca: string, body: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', ca, servername: 'localhost', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Three reviews: the uid echoed, allowed, a patch; from the webhooks, a patch of adds only that adds the sidecar. */
export async function verify(server: Server, ca: string, payload: PayloadName): Promise<void> {
  const { make } = bodyTemplate(payload);
  for (let i = 0; i < 3; i++) {
    const body = make();
    const uid = (JSON.parse(body) as { request: { uid: string } }).request.uid;
    const res = await post(`${server.url}/mutate`, ca, body);
    const response = (res.json as { response: { uid: string; allowed: boolean; patch?: string } }).response;
    if (res.status !== 200 || response.uid !== uid || !response.allowed || !response.patch) {
      throw new Error(`${server.name} gave a wrong answer for ${payload}: ${JSON.stringify(res.json).slice(0, 300)}`);
    }
    if (server.name !== 'floor') {
      const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString()) as { op: string; path: string; value?: { name?: string } }[];
      // A regular container, or a native sidecar where the server has them (the example profile says auto).
      const sidecar = ops.find((op) => /^\/spec\/(containers|initContainers)(\/\d+)?$/.test(op.path) && JSON.stringify(op.value).includes('"log-shipper"'));
      if (!sidecar || ops.some((op) => op.op !== 'add')) throw new Error(`webhook patch for ${payload} does not add the sidecar: ${JSON.stringify(ops).slice(0, 300)}`);
    }
  }
}
