// The dashboard's security middleware: which interfaces it may listen on, and the guards every
// request passes before a route sees it (the token, the Host header against DNS rebinding, the
// Origin of writes: guard() in auth.ts) and the size of a request body.
import { isIP } from 'node:net';
import type { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { guard, type GuardOptions } from './auth.js';
import { HttpError } from './validate.js';

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function checkHost(host: string): void {
  if (host !== 'localhost' && isIP(host) === 0) throw new HttpError(400, `--host must be an IP address or localhost, got "${host}"`);
}

/** Installs the guards on every route and the body limit on the API; call before adding routes. */
export function secure(app: Hono, opts: GuardOptions): void {
  // The token, the Host header (DNS rebinding) and cross-site writes: see auth.ts.
  app.use('*', guard(opts));
  app.use('/api/*', bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: 'the request body is larger than 64 KiB', code: 'TOO_LARGE' }, 413) }));
}
