// `retrace ui`: a local dashboard. A Hono app on Node's HTTP server, bound to 127.0.0.1 unless told
// otherwise, serving one static page (src/ui/public, with uPlot from node_modules: nothing from the
// network) and a JSON API over the library: the runs, a run's series, the machine state at any
// event, and jobs started here (train, branch, replay) whose progress streams to the page.
// Routes are listed in docs/ui.md. The training side (tfjs) loads on the first job, not at start.
// This module assembles the app and runs the server; each part is its own module: static.ts (the
// page's files), security.ts (the guards), context.ts (what routes share), read-routes.ts,
// action-routes.ts and streams.ts.
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { storeSpec } from '../run/common.js';
import { openRunStore } from '../storage/open.js';
import type { RunStore } from '../storage/types.js';
import { actionRoutes } from './action-routes.js';
import { checkToken, newToken } from './auth.js';
import { createContext } from './context.js';
import { DataRoots } from './data-roots.js';
import type { Jobs } from './jobs.js';
import { readRoutes } from './read-routes.js';
import { checkHost, isLoopback, secure } from './security.js';
import { loadAssets, publicPaths, staticRoutes } from './static.js';
import { streamRoutes } from './streams.js';
import { errorResponse, HttpError } from './validate.js';

export { isLoopback } from './security.js';

export interface UiServerOptions {
  /** A store (a folder, default $RETRACE_STORE or ./.retrace, or memory:NAME) or an open RunStore. */
  store?: string | RunStore;
  /** Interface to listen on (default 127.0.0.1). Anything but loopback makes the page reachable from other hosts. */
  host?: string;
  /** Port (default 0: a free one). */
  port?: number;
  /** Where exports from the page go (default ./retrace-exports). */
  exportDir?: string;
  /** How often runs other processes write are re-read, at most (ms, default 1000). */
  pollMs?: number;
  cwd?: string;
  /**
   * Folders whose files a config from the page may name (csv:PATH, module:PATH, initFrom),
   * relative to `cwd`; default: `cwd` alone. Each must exist.
   */
  dataRoots?: string[];
  /** Where the server writes its notes (full messages of failed jobs), one line each; default stderr. */
  log?: (line: string) => void;
  /**
   * The secret every API request must carry (Bearer header or the cookie the page gets from
   * `/?token=`); default: a new random one (see `chooseToken` in auth.ts).
   */
  token?: string;
}

export interface UiServer {
  /** The page's address, without the token. */
  url: string;
  /** The address to open once: `url` with `?token=`, which moves the token into a cookie. */
  openUrl: string;
  /** The token API requests need (`Authorization: Bearer TOKEN`). */
  token: string;
  /** The data roots, as real paths. */
  dataRoots: readonly string[];
  host: string;
  port: number;
  store: RunStore;
  jobs: Jobs;
  /** Stops the jobs (each training commits an interrupt checkpoint), the streams and the server. */
  close(): Promise<void>;
}

export async function startUiServer(opts: UiServerOptions = {}): Promise<UiServer> {
  const host = opts.host ?? '127.0.0.1';
  checkHost(host);
  const loopback = isLoopback(host);
  const pollMs = Math.max(50, opts.pollMs ?? 1000);
  const cwd = opts.cwd ?? process.cwd();
  const exportDir = path.resolve(cwd, opts.exportDir ?? 'retrace-exports');
  const token = opts.token === undefined ? newToken() : checkToken(opts.token, 'token');
  const roots = await DataRoots.open(opts.dataRoots ?? [], cwd);
  const log = opts.log ?? ((line: string) => void process.stderr.write(`retrace ui: ${line}\n`));
  const ownStore = typeof opts.store !== 'object';
  const store = typeof opts.store === 'object' ? opts.store : await openRunStore(storeSpec(opts.store, cwd));
  const assets = await loadAssets();
  const ctx = createContext({ store, cwd, exportDir, roots, host, loopback, pollMs, log });
  const { hub, jobs } = ctx;

  const app = new Hono();
  let boundPort = 0;

  secure(app, { token, host, loopback, port: () => boundPort, publicPaths: publicPaths(assets) });

  app.onError((err, c) => {
    const { status, body } = errorResponse(err);
    if (status >= 500) process.stderr.write(`retrace ui: ${c.req.method} ${c.req.path}: ${(err as Error)?.stack ?? String(err)}\n`);
    return c.json(body, status as 400);
  });
  app.notFound((c) => (c.req.path.startsWith('/api/') ? c.json({ error: `no route ${c.req.method} ${c.req.path}`, code: 'NOT_FOUND' }, 404) : c.text('not found', 404)));

  staticRoutes(app, assets);
  readRoutes(app, ctx);
  streamRoutes(app, ctx);
  actionRoutes(app, ctx);

  const server = createAdaptorServer({ fetch: app.fetch });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new HttpError(409, `port ${opts.port ?? 0} on ${host} is in use: pass --port 0 to pick a free one`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new HttpError(400, `cannot listen on ${host}: no such address on this machine`));
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts.port ?? 0, host);
  });
  server.on('error', (err) => process.stderr.write(`retrace ui: server error: ${(err as Error).message}\n`));
  boundPort = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host;

  let closing: Promise<void> | null = null;
  const url = `http://${urlHost}:${boundPort}/`;
  return {
    url,
    openUrl: `${url}?token=${token}`,
    token,
    dataRoots: roots.real,
    host,
    port: boundPort,
    store,
    jobs,
    close() {
      closing ??= (async () => {
        ctx.closed = true;
        hub.notifyAll();
        await jobs.shutdown();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          (server as import('node:http').Server).closeAllConnections?.();
        });
        if (ownStore) await store.close();
      })();
      return closing;
    },
  };
}
