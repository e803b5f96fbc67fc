// The dashboard's token: every API route and stream answers 401 without it (a local process that
// only knows the port gets nothing and starts nothing), a wrong one is refused the same way, and
// it is accepted as a Bearer header or as the cookie the printed URL sets. A fixed token comes from
// $RETRACE_UI_TOKEN or --token-file; `--token` on the command line is refused. Real servers, real
// HTTP, and `retrace ui` as a real child process.
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseToken, cookieName, sameToken, TOKEN_ENV, TokenError } from '../../src/ui/auth.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { ROOT, removeTempDirs, tempDir } from './helpers.js';

let dir: string;
let server: UiServer;

beforeAll(async () => {
  dir = await tempDir('retrace-ui-auth-');
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200, cwd: dir });
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

/** A raw request (fetch hides Set-Cookie handling and follows redirects). */
function raw(route: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path: route, method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        // A stream that was let in: its first bytes are enough.
        if (res.headers['content-type']?.startsWith('text/event-stream')) req.destroy();
      });
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

const JSON_POST = { 'Content-Type': 'application/json' };

// Every route of docs/ui.md's API table, streams included.
const ROUTES: Array<[string, string, unknown?]> = [
  ['GET', '/api/meta'],
  ['GET', '/api/runs'],
  ['GET', '/api/runs/some-run'],
  ['GET', '/api/runs/some-run/state?at=0'],
  ['GET', '/api/runs/some-run/events'],
  ['GET', '/api/runs/some-run/stream'],
  ['GET', '/api/stream'],
  ['GET', '/api/jobs'],
  ['GET', '/api/jobs/job-00000000'],
  ['GET', '/api/no-such-route'],
  ['POST', '/api/train', { config: { dataset: 'csv:/etc/shadow', label: 'z' } }],
  ['POST', '/api/runs/some-run/branch', { point: 'best' }],
  ['POST', '/api/runs/some-run/resume', {}],
  ['POST', '/api/runs/some-run/replay', {}],
  ['POST', '/api/runs/some-run/export', {}],
  ['POST', '/api/jobs/job-00000000/stop', {}],
];

describe('retrace ui refuses API requests without its token', () => {
  const wrong = (t: string) => `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`;
  const variants: Array<[string, (t: string) => Record<string, string>]> = [
    ['no credential', () => ({})],
    ['a wrong Bearer token of the same length', (t) => ({ Authorization: `Bearer ${wrong(t)}` })],
    ['an empty Bearer', () => ({ Authorization: 'Bearer ' })],
    ['Basic instead of Bearer', (t) => ({ Authorization: `Basic ${Buffer.from(`u:${t}`).toString('base64')}` })],
    ['a wrong cookie', (t) => ({ Cookie: `${cookieName(server.port)}=${wrong(t)}` })],
    ['the right token in another port\'s cookie', (t) => ({ Cookie: `${cookieName(server.port + 1)}=${t}` })],
    ['the token as a query parameter of an API route', () => ({})],
  ];
  for (const [label, headers] of variants) {
    it(`401 for every route with ${label}`, async () => {
      for (const [method, route, body] of ROUTES) {
        const target = label.includes('query') ? `${route}${route.includes('?') ? '&' : '?'}token=${server.token}` : route;
        const res = await raw(target, { method, headers: { ...(body !== undefined ? JSON_POST : {}), ...headers(server.token) }, body: body === undefined ? undefined : JSON.stringify(body) });
        expect(res.status, `${method} ${route}`).toBe(401);
        expect(JSON.parse(res.body)).toEqual({ error: expect.stringMatching(/missing or wrong token.*\?token=.*Authorization: Bearer/), code: 'UNAUTHORIZED' });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
      // Nothing was started: the refused train with csv:/etc/shadow left no job and no run.
      expect(server.jobs.list()).toEqual([]);
      expect(await server.store.listRuns()).toEqual([]);
    });
  }

  it('no spelling of a path reaches a route without the token (default deny: only the exact asset paths are open)', async () => {
    const spellings = ['/assets/../api/runs', '/./api/runs', '/assets/%2e%2e/api/runs', '/%61pi/runs', '/api/runs/', '//api/runs', '/api%2Fruns', '/API/runs', '/assets/app.js/../../api/meta', '/nothing', '/api'];
    for (const route of spellings) {
      const res = await raw(route);
      expect(res.status, route).toBe(401);
    }
    for (const asset of ['/assets/app.js', '/assets/chart.js', '/assets/app.css', '/assets/uPlot.iife.min.js', '/assets/uPlot.min.css', '/favicon.ico']) {
      expect((await raw(asset)).status, asset).toBeLessThan(300);
    }
  });

  it('answers with the Bearer token, on every route (401 never; streams open)', async () => {
    for (const [method, route, body] of ROUTES) {
      if (route.includes('/train') || route.includes('/stop')) continue; // would start or touch work
      const res = await raw(route, { method, headers: { ...(body !== undefined ? JSON_POST : {}), Authorization: `Bearer ${server.token}` }, body: body === undefined ? undefined : JSON.stringify(body) });
      expect(res.status, `${method} ${route}: ${res.body}`).not.toBe(401);
    }
    const runs = await raw('/api/runs', { headers: { Authorization: `bearer  ${server.token}` } });
    expect(runs.status).toBe(200);
  });

  it('the printed URL sets an HttpOnly SameSite=Strict cookie and redirects to the clean URL; the cookie then opens the API', async () => {
    expect(server.openUrl).toBe(`${server.url}?token=${server.token}`);
    const open = await raw(`/?token=${server.token}`);
    expect(open.status).toBe(303);
    expect(open.headers.location).toBe('/');
    const cookie = ([] as string[]).concat(open.headers['set-cookie'] ?? [])[0]!;
    expect(cookie).toMatch(new RegExp(`^${cookieName(server.port)}=${server.token};`));
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    const pair = cookie.split(';')[0]!;
    const page = await raw('/', { headers: { Cookie: `other=1; ${pair}` } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('/assets/app.js');
    expect((await raw('/api/runs', { headers: { Cookie: pair } })).status).toBe(200);
    const stream = await raw('/api/stream', { headers: { Cookie: pair } });
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
  });

  it('the page without a token, or with a wrong ?token=, is a 401 page that says how to open it, and sets no cookie', async () => {
    for (const route of ['/', '/?token=wrong', `/?token=${server.token}x`]) {
      const res = await raw(route);
      expect(res.status, route).toBe(401);
      expect(res.body).toContain('?token=');
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    // The page's code and styles hold nothing secret: they load without a token.
    expect((await raw('/assets/app.js')).status).toBe(200);
  });

  it('a POST with the cookie still needs JSON and no foreign Origin (CSRF)', async () => {
    const cookie = `${cookieName(server.port)}=${server.token}`;
    const form = await raw('/api/jobs/job-00000000/stop', { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    expect(form.status).toBe(415);
    const cross = await raw('/api/jobs/job-00000000/stop', { method: 'POST', headers: { Cookie: cookie, ...JSON_POST, Origin: 'http://evil.example' }, body: '{}' });
    expect(cross.status).toBe(403);
    const site = await raw('/api/jobs/job-00000000/stop', { method: 'POST', headers: { Cookie: cookie, ...JSON_POST, 'Sec-Fetch-Site': 'cross-site' }, body: '{}' });
    expect(site.status).toBe(403);
    const same = await raw('/api/jobs/job-00000000/stop', { method: 'POST', headers: { Cookie: cookie, ...JSON_POST, Origin: `http://127.0.0.1:${server.port}` }, body: '{}' });
    expect(same.status).toBe(404); // let in: there is no such job
  });

  it('a foreign Host header is refused even with the token (DNS rebinding)', async () => {
    const res = await raw('/api/runs', { headers: { Host: `rebind.example:${server.port}`, Authorization: `Bearer ${server.token}` } });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).code).toBe('BAD_HOST');
  });

  it('a fixed token given to startUiServer is the one required; a weak one is refused', async () => {
    const fixed = 'fixed-token-0123456789abcdef';
    const other = await startUiServer({ store: path.join(dir, 'store2'), port: 0, token: fixed });
    try {
      expect(other.token).toBe(fixed);
      expect((await fetch(new URL('/api/meta', other.url))).status).toBe(401);
      expect((await fetch(new URL('/api/meta', other.url), { headers: { Authorization: `Bearer ${fixed}` } })).status).toBe(200);
      expect((await fetch(new URL('/api/meta', other.url), { headers: { Authorization: `Bearer ${server.token}` } })).status).toBe(401);
    } finally {
      await other.close();
    }
    await expect(startUiServer({ store: path.join(dir, 'store3'), port: 0, token: 'short' })).rejects.toThrow(/16 to 256/);
  });

  it('two servers make different tokens; comparison is by value', () => {
    expect(sameToken('abc', 'abc')).toBe(true);
    expect(sameToken('abc', 'abd')).toBe(false);
    expect(sameToken('abc', 'abcd')).toBe(false);
    expect(sameToken('', 'abc')).toBe(false);
  });
});

describe('a fixed token: $RETRACE_UI_TOKEN or --token-file', () => {
  it('chooseToken: the file first, then the env var, else a new random token', async () => {
    const file = path.join(dir, 'token.txt');
    await writeFile(file, 'from-the-file-0123456789\n');
    await chmod(file, 0o600);
    expect(await chooseToken({ tokenFile: file, env: { [TOKEN_ENV]: 'from-the-env-0123456789' } })).toEqual({ token: 'from-the-file-0123456789', source: 'file', warning: null });
    expect(await chooseToken({ env: { [TOKEN_ENV]: 'from-the-env-0123456789' } })).toEqual({ token: 'from-the-env-0123456789', source: 'env', warning: null });
    const a = await chooseToken({ env: {} });
    const b = await chooseToken({ env: {} });
    expect(a.source).toBe('generated');
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(a.token).not.toBe(b.token);
  });

  it('a token file readable by others is used with a warning; a bad file or token is a one-line error that never quotes the file', async () => {
    const open = path.join(dir, 'open-token.txt');
    await writeFile(open, 'readable-by-all-0123456789');
    await chmod(open, 0o644);
    expect((await chooseToken({ tokenFile: open })).warning).toMatch(/readable by other users: chmod 600/);
    const secret = path.join(dir, 'secret.txt');
    await writeFile(secret, 'root:$6$salt$secret hash with spaces\n');
    const cases: Array<[string, RegExp]> = [
      [path.join(dir, 'missing.txt'), /cannot read it \(ENOENT\)/],
      [dir, /not a regular file/],
      [secret, /16 to 256 letters.*it has other characters/],
    ];
    await mkdir(path.join(dir, 'empty-dir'), { recursive: true });
    const empty = path.join(dir, 'empty.txt');
    await writeFile(empty, '');
    cases.push([empty, /it has 0\)/]);
    const big = path.join(dir, 'big.txt');
    await writeFile(big, `${'a'.repeat(20)}\n${'root:x\n'.repeat(2000)}`);
    cases.push([big, /: 14021 bytes is not a token file/]);
    for (const [file, message] of cases) {
      const err = await chooseToken({ tokenFile: file }).catch((e: unknown) => e);
      expect(err, file).toBeInstanceOf(TokenError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('root:');
      expect((err as Error).message).not.toContain('\n');
    }
    await expect(chooseToken({ env: { [TOKEN_ENV]: 'short' } })).rejects.toThrow(/\$RETRACE_UI_TOKEN: the token must be/);
  });
});

describe('`retrace ui` on the command line', () => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'ui', '--port', '0', '--store', path.join(dir, 'cli-store'), ...args], {
      cwd: ROOT,
      env: { ...process.env, [TOKEN_ENV]: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  /** Starts `retrace ui --json`, hands its printed URL to `fn`, then stops it (SIGTERM: exit 0). */
  async function withCli(args: string[], env: Record<string, string>, fn: (url: URL) => Promise<void>): Promise<void> {
    const child = cli(['--json', ...args], env);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
        });
        child.once('exit', (code) => reject(new Error(`retrace ui exited ${code}: ${stderr}`)));
      });
      await fn(new URL(JSON.parse(line).url as string));
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
  }

  const status = async (origin: string, token?: string) =>
    (await fetch(new URL('/api/meta', origin), { headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } })).status;

  it('a generated token is printed once, in the URL; that URL opens the API and the bare port does not', async () => {
    await withCli([], {}, async (url) => {
      const token = url.searchParams.get('token')!;
      expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(await status(url.origin)).toBe(401);
      expect(await status(url.origin, token)).toBe(200);
      expect((await fetch(url, { redirect: 'manual' })).status).toBe(303);
    });
  });

  it('RETRACE_UI_TOKEN and --token-file set the token, which is not printed again', async () => {
    const fixed = 'env-token-abcdefghijklmnop';
    await withCli([], { [TOKEN_ENV]: fixed }, async (url) => {
      expect(url.href).not.toContain(fixed);
      expect(url.searchParams.has('token')).toBe(false);
      expect(await status(url.origin)).toBe(401);
      expect(await status(url.origin, fixed)).toBe(200);
    });
    const file = path.join(dir, 'cli-token.txt');
    await writeFile(file, 'file-token-abcdefghijklmnop\n', { mode: 0o600 });
    await withCli(['--token-file', file], { [TOKEN_ENV]: fixed }, async (url) => {
      expect(url.href).not.toContain('file-token');
      // The file wins over the environment: an explicit flag beats a profile's variable.
      expect(await status(url.origin, 'file-token-abcdefghijklmnop')).toBe(200);
      expect(await status(url.origin, fixed)).toBe(401);
    });
  });

  it('--token on the command line is not offered: exit 2 naming the safe ways; --help does not list it', () => {
    const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'ui', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, [TOKEN_ENV]: '' }, timeout: 60_000 });
    const refused = run(['--port', '0', '--store', path.join(dir, 'cli-store'), '--token', 'abcdefghijklmnop0123']);
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/--token is not accepted.*--token-file FILE.*RETRACE_UI_TOKEN/);
    expect(refused.stdout).toBe('');
    const help = run(['--help']);
    expect(help.stdout).toContain('--token-file');
    expect(help.stdout).not.toMatch(/--token\s/);
    const weak = run(['--port', '0', '--store', path.join(dir, 'cli-store'), '--token-file', path.join(dir, 'missing-token')]);
    expect(weak.status).toBe(2);
    expect(weak.stderr).toMatch(/--token-file .*missing-token: cannot read it/);
  });
});
