/**
 * The floor: the least an express webhook can do. Express 5 over HTTPS,
 * express.json({ limit: '3mb' }), parse the review, answer a fixed small
 * patch. Run as its own process: node floor.js PORT CERT KEY.
 */
import express from 'express';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, cert, key] = process.argv.slice(2) as [string, string, string];
const PATCH = Buffer.from(
  JSON.stringify([{ op: 'add', path: '/metadata/annotations/floor', value: 'true' }]),
).toString('base64');

const app = express();
app.use(express.json({ limit: '3mb' }));
app.post('/mutate', (req, res) => {
  const body = req.body as { apiVersion: string; request: { uid: string } };
  res.json({ apiVersion: body.apiVersion, kind: 'AdmissionReview', response: { uid: body.request.uid, allowed: true, patchType: 'JSONPatch', patch: PATCH } });
});
createServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' }, app).listen(Number(port), '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => process.exit(0));
