// Who may use the dashboard's API: the holder of a secret token, as notebook servers do. Any local
// process can connect to a loopback port, so the port alone proves nothing: the server makes a
// random token at start (or takes a fixed one from RETRACE_UI_TOKEN / --token-file, never from the
// command line, which every local user sees in the process list) and prints it once in the URL it
// shows. Opening that URL moves the token into an HttpOnly, SameSite=Strict cookie and redirects
// to the clean URL; scripts send `Authorization: Bearer TOKEN`. Everything under /api answers 401
// without it. The same middleware refuses what a browser page elsewhere could send: a foreign Host
// header (DNS rebinding), a cross-site or non-JSON POST (CSRF).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';

/** Where a fixed token comes from (the env var's name is a contract, see docs/ui.md). */
export const TOKEN_ENV = 'RETRACE_UI_TOKEN';

/** A fixed token: 16 to 256 of the characters a URL, a header and a cookie carry unescaped. */
const TOKEN_RE = /^[A-Za-z0-9._~-]{16,256}$/;

export class TokenError extends Error {
  override name = 'TokenError';
}

/** A new token: 24 random bytes (192 bits) as 32 base64url characters. */
export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Checks a fixed token's shape. Throws TokenError naming where it came from and the fix. */
export function checkToken(token: string, from: string): string {
  if (!TOKEN_RE.test(token)) {
    throw new TokenError(`${from}: the token must be 16 to 256 letters, digits, ".", "_", "~" or "-" (${token.length < 16 || token.length > 256 ? `it has ${token.length}` : 'it has other characters'}); make one with node -e "console.log(require('crypto').randomBytes(24).toString('base64url'))"`);
  }
  return token;
}

export interface TokenChoice {
  token: string;
  /** 'generated' (printed in the URL), 'env' or 'file'. */
  source: 'generated' | 'env' | 'file';
  /** A note for the terminal (e.g. the token file is readable by other users), or null. */
  warning: string | null;
}

/**
 * The token for a server: the file's first line if `tokenFile` is given, else $RETRACE_UI_TOKEN
 * if set, else a new random one.
 * @throws TokenError when the file cannot be read, is not a regular file, or the token is malformed.
 */
export async function chooseToken(opts: { tokenFile?: string; env?: NodeJS.ProcessEnv }): Promise<TokenChoice> {
  if (opts.tokenFile !== undefined) {
    let text: string;
    let mode: number;
    try {
      const st = await fsp.stat(opts.tokenFile);
      if (!st.isFile()) throw new TokenError(`--token-file ${opts.tokenFile}: not a regular file; put the token alone in a file`);
      if (st.size > 4096) throw new TokenError(`--token-file ${opts.tokenFile}: ${st.size} bytes is not a token file; put the token alone in a file`);
      mode = st.mode;
      text = await fsp.readFile(opts.tokenFile, 'utf8');
    } catch (err) {
      if (err instanceof TokenError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new TokenError(`--token-file ${opts.tokenFile}: cannot read it (${code ?? (err as Error).message}); give a readable file holding the token`);
    }
    // The first line only, without its line ending: editors add a final newline. The message
    // never quotes the file.
    const token = checkToken(text.split(/\r?\n/)[0]!, `--token-file ${opts.tokenFile}`);
    const warning = (mode & 0o077) !== 0 ? `--token-file ${opts.tokenFile} is readable by other users: chmod 600 it` : null;
    return { token, source: 'file', warning };
  }
  const fromEnv = (opts.env ?? process.env)[TOKEN_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { token: checkToken(fromEnv, `$${TOKEN_ENV}`), source: 'env', warning: null };
  return { token: newToken(), source: 'generated', warning: null };
}

/** Compares in constant time (both sides hashed first, so their lengths do not leak either). */
export function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Cookies are not kept apart by port: two dashboards on one host each need their own name. */
export function cookieName(port: number): string {
  return `retrace_ui_${port}`;
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The token a request carries: `Authorization: Bearer TOKEN` or this server's cookie. */
export function requestToken(c: Context, port: number): string | null {
  const auth = c.req.header('authorization');
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1]! : '';
  }
  return cookieValue(c.req.header('cookie'), cookieName(port));
}

export interface GuardOptions {
  token: string;
  /** The interface the server listens on; Host headers are checked when it is loopback. */
  host: string;
  loopback: boolean;
  /** The bound port (known once listening). */
  port: () => number;
  /** Paths served without a token (the page's scripts and styles): exact matches only. */
  publicPaths: ReadonlySet<string>;
}

const UNAUTHORIZED = {
  error: 'missing or wrong token: open the URL retrace ui printed (it carries ?token=), or send "Authorization: Bearer TOKEN"',
  code: 'UNAUTHORIZED',
} as const;

function unauthorized(c: Context): Response {
  c.header('WWW-Authenticate', 'Bearer realm="retrace ui"');
  c.header('Cache-Control', 'no-store');
  return c.json(UNAUTHORIZED, 401);
}

const LOGIN_PAGE = `<!doctype html><meta charset="utf-8"><title>retrace ui: token needed</title>
<p>This dashboard needs its token. Open the URL <code>retrace ui</code> printed in its terminal
(it ends in <code>?token=…</code>), or, with a fixed token, add <code>?token=YOUR_TOKEN</code> to this address once.</p>\n`;

/**
 * The request guards, in order: Host (DNS rebinding), the token, then for writes the Origin,
 * Sec-Fetch-Site and a JSON body. The token is required everywhere except the exact paths in
 * `publicPaths` (static assets: nothing but the page's code) — default deny, so no spelling of a
 * path can reach a route unguarded. `GET /?token=` sets the cookie; `/` without it is a 401 page.
 */
export function guard(opts: GuardOptions): MiddlewareHandler {
  return async (c, next) => {
    const port = opts.port();
    const hostHeader = (c.req.header('host') ?? '').toLowerCase();
    if (opts.loopback) {
      const ok = ['127.0.0.1', 'localhost', '[::1]', opts.host.includes(':') ? `[${opts.host}]` : opts.host].some((h) => hostHeader === `${h}:${port}`);
      if (!ok) return c.json({ error: `unexpected Host header "${hostHeader}": this dashboard answers on ${opts.host}:${port} only`, code: 'BAD_HOST' }, 403);
    }
    if (c.req.path === '/' && (c.req.method === 'GET' || c.req.method === 'HEAD')) {
      const fromQuery = c.req.query('token');
      if (fromQuery !== undefined) {
        if (!sameToken(fromQuery, opts.token)) {
          c.header('Cache-Control', 'no-store');
          return c.html(LOGIN_PAGE, 401);
        }
        // The token leaves the address bar (and the history) at once; the cookie carries it.
        c.header('Set-Cookie', `${cookieName(port)}=${opts.token}; HttpOnly; SameSite=Strict; Path=/`);
        c.header('Cache-Control', 'no-store');
        c.header('Referrer-Policy', 'no-referrer');
        return c.redirect('/', 303);
      }
      const given = requestToken(c, port);
      if (given === null || !sameToken(given, opts.token)) {
        c.header('Cache-Control', 'no-store');
        return c.html(LOGIN_PAGE, 401);
      }
    } else if (!opts.publicPaths.has(c.req.path)) {
      const given = requestToken(c, port);
      if (given === null || !sameToken(given, opts.token)) return unauthorized(c);
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      if (origin && origin.toLowerCase() !== `http://${hostHeader}`) {
        return c.json({ error: `cross-origin request from ${origin} refused`, code: 'BAD_ORIGIN' }, 403);
      }
      if (c.req.header('sec-fetch-site') === 'cross-site') return c.json({ error: 'cross-site request refused', code: 'BAD_ORIGIN' }, 403);
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/json\b/i.test(type)) return c.json({ error: 'send the request body as application/json', code: 'BAD_CONTENT_TYPE' }, 415);
    }
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'");
  };
}
