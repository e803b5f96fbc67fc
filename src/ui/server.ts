// `retrace ui`: a local dashboard. A Hono app on Node's HTTP server, bound to 127.0.0.1 unless told
// otherwise, serving one static page (src/ui/public, with uPlot from node_modules: nothing from the
// network) and a JSON API over the library: the runs, a run's series, the machine state at any
// event, and jobs started here (train, branch, replay) whose progress streams to the page.
// Routes are listed in docs/ui.md. The training side (tfjs) loads on the first job, not at start.
import { existsSync, promises as fsp } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAdaptorServer } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { canExport, canResume } from '../../machines/queries.js';
import { initialBudget } from '../../machines/training.machine.js';
import { DEFAULTS, OPTIMIZERS, resolveConfig, type ConfigInput } from '../config.js';
import { UnknownRunError } from '../log/errors.js';
import type { LogRecord } from '../log/events.js';
import { RUN_ID_RE, Store } from '../log/store.js';
import { newRunId, storeDir } from '../run/common.js';
import { resolveAt, stateAt } from '../run/inspect.js';
import { checkpointHolding, resolvePoint } from '../run/points.js';
import { inheritableConfig, RETRACE_VERSION } from '../run/environment.js';
import { RunCache, type CachedRun } from './cache.js';
import { checkToken, guard, newToken } from './auth.js';
import { DataRoots, publicJobError, readsUserFiles } from './data-roots.js';
import { Hub } from './hub.js';
import { Jobs, type JobInfo } from './jobs.js';
import {
  allowOnly,
  atParam,
  checkpointParam,
  configParam,
  cursorParam,
  limitParam,
  errorResponse,
  exportNameParam,
  HttpError,
  objectBody,
  pointParam,
  runIdParam,
  seqParam,
} from './validate.js';
import { buildView, createdInfo, lightRecord, runRow, type RunRow } from './view.js';

export interface UiServerOptions {
  /** A store folder (default: $RETRACE_STORE or ./.retrace) or an open Store. */
  store?: string | Store;
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
  store: Store;
  jobs: Jobs;
  /** Stops the jobs (each training commits an interrupt checkpoint), the streams and the server. */
  close(): Promise<void>;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function checkHost(host: string): void {
  if (host !== 'localhost' && isIP(host) === 0) throw new HttpError(400, `--host must be an IP address or localhost, got "${host}"`);
}

/** The static page's folder: next to this module in the sources, or in the sources from dist/. */
function publicDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'public'), path.resolve(here, '../../../src/ui/public')];
  const found = candidates.find((p) => existsSync(path.join(p, 'index.html')));
  if (!found) throw new Error(`retrace ui: the page's files are missing (looked in ${candidates.join(', ')})`);
  return found;
}

interface Asset {
  body: Buffer;
  type: string;
}

async function loadAssets(): Promise<Map<string, Asset>> {
  const dir = publicDir();
  const require = createRequire(import.meta.url);
  const files: Array<[string, string, string]> = [
    ['/', path.join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['/assets/app.js', path.join(dir, 'app.js'), 'text/javascript; charset=utf-8'],
    ['/assets/chart.js', path.join(dir, 'chart.js'), 'text/javascript; charset=utf-8'],
    ['/assets/app.css', path.join(dir, 'app.css'), 'text/css; charset=utf-8'],
    ['/assets/uPlot.iife.min.js', require.resolve('uplot/dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/assets/uPlot.min.css', require.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  const out = new Map<string, Asset>();
  for (const [route, file, type] of files) out.set(route, { body: await fsp.readFile(file), type });
  return out;
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
  const ownStore = !(opts.store instanceof Store);
  const store = opts.store instanceof Store ? opts.store : await Store.open(storeDir(opts.store, cwd));
  const assets = await loadAssets();

  const hub = new Hub();
  let closed = false;
  const jobs = new Jobs((runId, record) => {
    cache.push(runId, record);
    hub.notify(`run:${runId}`);
    hub.notify('runs');
  });
  const cache = new RunCache(store, { minCopyIntervalMs: pollMs, writingHere: (id) => jobs.writing(id) });
  let jobsVersion = 0;
  jobs.subscribe((job) => {
    jobsVersion += 1;
    hub.notify('jobs');
    if (job.status === 'done' || job.status === 'failed') {
      cache.markDirty(job.runId);
      hub.notify(`run:${job.runId}`);
      hub.notify('runs');
    }
  });

  /** Every run's row; a run removed meanwhile is left out, an unreadable one says why. */
  async function listRows(): Promise<RunRow[]> {
    const ids = await cache.ids();
    const read = await Promise.all(
      ids.map(async (id): Promise<RunRow | null> => {
        try {
          return (await cache.get(id)).row;
        } catch (err) {
          if (err instanceof UnknownRunError) return null;
          return { ...emptyRow(id), state: 'unreadable', error: (err as Error).message };
        }
      }),
    );
    const rows = read.filter((r): r is RunRow => r !== null);
    // Runs a job of this server is about to create show up at once.
    for (const job of jobs.running()) {
      if ((job.kind === 'train' || job.kind === 'branch') && !rows.some((r) => r.runId === job.runId)) rows.push(startingRow(job));
    }
    return rows;
  }

  /** The row of a run a job of this server is creating (before its first record). */
  function startingRow(job: JobInfo): RunRow {
    const p = job.params;
    const parent = job.kind === 'branch' ? { runId: String(p.parent), point: String(p.point), step: Number(p.step ?? 0), seq: Number(p.seq ?? 0) } : null;
    return { ...emptyRow(job.runId), parent, state: 'starting', writer: { pid: process.pid, hostname: '', command: 'retrace ui', since: job.startedAt, inProcess: true } };
  }

  async function runOrThrow(runId: string, force = false): Promise<CachedRun & { history: NonNullable<CachedRun['history']> }> {
    const entry = await cache.get(runId, { force });
    if (!entry.history) {
      throw new HttpError(409, entry.row.error ? `run ${runId} cannot be read: ${entry.row.error}` : `run ${runId} has no events yet (it is starting)`, 'NOT_READY');
    }
    return entry as CachedRun & { history: NonNullable<CachedRun['history']> };
  }

  async function jsonBody(c: Context): Promise<Record<string, unknown>> {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new HttpError(400, 'the request body is not valid JSON');
    }
    return objectBody(body);
  }

  const app = new Hono();
  let boundPort = 0;

  // The token, the Host header (DNS rebinding) and cross-site writes: see auth.ts.
  const publicPaths = new Set([...assets.keys()].filter((route) => route !== '/').concat('/favicon.ico'));
  app.use('*', guard({ token, host, loopback, port: () => boundPort, publicPaths }));
  app.use('/api/*', bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: 'the request body is larger than 64 KiB', code: 'TOO_LARGE' }, 413) }));

  app.onError((err, c) => {
    const { status, body } = errorResponse(err);
    if (status >= 500) process.stderr.write(`retrace ui: ${c.req.method} ${c.req.path}: ${(err as Error)?.stack ?? String(err)}\n`);
    return c.json(body, status as 400);
  });
  app.notFound((c) => (c.req.path.startsWith('/api/') ? c.json({ error: `no route ${c.req.method} ${c.req.path}`, code: 'NOT_FOUND' }, 404) : c.text('not found', 404)));

  for (const [route, asset] of assets) {
    app.get(route, (c) => {
      c.header('Content-Type', asset.type);
      c.header('Cache-Control', 'no-cache');
      return c.body(new Uint8Array(asset.body));
    });
  }
  app.get('/favicon.ico', (c) => c.body(null, 204));

  app.get('/api/meta', (c) =>
    c.json({
      version: RETRACE_VERSION,
      store: store.dir,
      exportDir,
      dataRoots: roots.real,
      host,
      loopback,
      pollMs,
      defaults: DEFAULTS,
      optimizers: OPTIMIZERS,
    }),
  );

  // The runs by id, `limit` at a time (default 100, at most 1000); nextCursor is the last id of the
  // page, and the next page starts after it.
  app.get('/api/runs', async (c) => {
    const limit = limitParam(c.req.query('limit'), 100, 1000);
    const cursor = cursorParam(c.req.query('cursor'), RUN_ID_RE);
    const rows = (await listRows()).filter((r) => cursor === null || r.runId > cursor).sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
    const runs = rows.slice(0, limit);
    const nextCursor = rows.length > runs.length ? runs[runs.length - 1]!.runId : null;
    return c.json({ runs, jobs: jobs.list(), nextCursor });
  });

  /** A run, or — while a job of this server is creating it — a placeholder with no records. */
  async function runOrStarting(runId: string): Promise<CachedRun> {
    try {
      return await cache.get(runId);
    } catch (err) {
      const job = jobs.running().find((j) => j.runId === runId && (j.kind === 'train' || j.kind === 'branch'));
      if (!(err instanceof UnknownRunError) || !job) throw err;
      return { runId, records: [], history: null, row: startingRow(job) };
    }
  }

  app.get('/api/runs/:id', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const since = seqParam(c.req.query('since'), 'since', -1);
    const entry = await runOrStarting(runId);
    return c.json({
      run: entry.row,
      created: entry.history ? createdInfo(entry.history) : null,
      view: buildView(entry.records, since),
    });
  });

  app.get('/api/runs/:id/state', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const at = atParam(c.req.query('at'));
    const { history } = await runOrThrow(runId);
    const seq = resolveAt(history, at);
    const view = stateAt(history, seq, 6);
    return c.json({ ...view, lastSeq: history.lastSeq, record: lightRecord(history.records[seq]!), around: view.around.map(lightRecord) });
  });

  app.get('/api/runs/:id/events', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const entry = await cache.get(runId);
    const last = entry.records.length - 1;
    const from = Math.max(0, seqParam(c.req.query('from'), 'from', 0));
    const to = Math.min(last, seqParam(c.req.query('to'), 'to', last), from + 999);
    return c.json({ lastSeq: last, events: entry.records.slice(from, to + 1).map(lightRecord) });
  });

  /** Server-sent events, at most MAX_STREAMS open at once (each holds a loop and a subscription). */
  let openStreams = 0;
  function openStream(c: Context, fn: (stream: SSEStreamingApi) => Promise<void>): Response {
    if (openStreams >= MAX_STREAMS) throw new HttpError(429, `${MAX_STREAMS} event streams are open on this server: close some dashboard tabs`, 'TOO_MANY_STREAMS');
    openStreams += 1;
    let counted = true;
    const release = () => {
      if (counted) openStreams -= 1;
      counted = false;
    };
    try {
      return streamSSE(c, async (stream) => {
        try {
          await fn(stream);
        } finally {
          release();
        }
      });
    } catch (err) {
      release();
      throw err;
    }
  }

  app.get('/api/runs/:id/stream', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    // EventSource sends the id of the last event it got when it reconnects: the page's last seq.
    let since = seqParam(c.req.header('last-event-id') ?? c.req.query('since'), 'since', -1);
    await runOrStarting(runId); // 404 before the stream starts
    return openStream(c, async (stream) => {
      const sub = hub.subscribe([`run:${runId}`, 'shutdown']);
      stream.onAbort(() => sub.close());
      let rowJson = '';
      let lastKeepAlive = Date.now();
      try {
        while (!stream.aborted && !closed) {
          let entry: CachedRun;
          try {
            entry = await runOrStarting(runId);
          } catch (err) {
            if (err instanceof UnknownRunError) {
              await send(stream, 'gone', { runId, error: err.message });
              return;
            }
            await send(stream, 'problem', { error: (err as Error).message });
            await sub.wait(pollMs);
            continue;
          }
          const last = entry.records.length - 1;
          if (last < since) {
            // The log was replaced (removed and made again): the page starts over.
            await send(stream, 'reset', { runId });
            since = -1;
          }
          if (last > since) {
            await send(stream, 'delta', { run: entry.row, view: buildView(entry.records, since) }, String(last));
            since = last;
            rowJson = JSON.stringify(entry.row);
          } else if (JSON.stringify(entry.row) !== rowJson) {
            rowJson = JSON.stringify(entry.row);
            await send(stream, 'run', { run: entry.row });
          } else if (Date.now() - lastKeepAlive > 15_000) {
            await stream.write(': keep-alive\n\n');
            lastKeepAlive = Date.now();
          }
          // At most a few reads a second, however fast a local run appends.
          await sleep(200);
          await sub.wait(pollMs);
        }
      } finally {
        sub.close();
      }
    });
  });

  // The runs list and the jobs: one watcher for all pages, re-reading changed runs every pollMs.
  let rows: RunRow[] = [];
  let rowsVersion = 0;
  let watchers = 0;
  let watching: Promise<void> | null = null;
  function watchRuns(): void {
    if (watching) return;
    const sub = hub.subscribe(['runs', 'shutdown']);
    watching = (async () => {
      try {
        while (!closed && watchers > 0) {
          try {
            const next = await listRows();
            if (JSON.stringify(next) !== JSON.stringify(rows)) {
              rows = next;
              rowsVersion += 1;
              hub.notify('rows');
            }
          } catch (err) {
            process.stderr.write(`retrace ui: listing runs: ${(err as Error).message}\n`);
          }
          // At most two lists a second (each stats every run's files), however fast runs append.
          await sleep(500);
          await sub.wait(pollMs);
        }
      } finally {
        sub.close();
        watching = null;
      }
    })();
  }

  app.get('/api/stream', (c) =>
    openStream(c, async (stream) => {
      const sub = hub.subscribe(['rows', 'jobs', 'shutdown']);
      stream.onAbort(() => sub.close());
      watchers += 1;
      watchRuns();
      let sentRows = -1;
      let sentJobs = -1;
      let lastKeepAlive = Date.now();
      try {
        if (rowsVersion === 0) {
          rows = await listRows();
          rowsVersion = 1;
        }
        while (!stream.aborted && !closed) {
          if (sentRows !== rowsVersion) {
            sentRows = rowsVersion;
            await send(stream, 'runs', { runs: rows });
          }
          if (sentJobs !== jobsVersion) {
            sentJobs = jobsVersion;
            await send(stream, 'jobs', { jobs: jobs.list() });
            // Many jobs changing at once (a flood of requests) make one event every quarter second.
            await sleep(250);
          }
          if (Date.now() - lastKeepAlive > 15_000) {
            await stream.write(': keep-alive\n\n');
            lastKeepAlive = Date.now();
          }
          await sub.wait(15_000);
        }
      } finally {
        watchers -= 1;
        sub.close();
      }
    }),
  );

  // Newest first, `limit` at a time (default 50, at most 200).
  app.get('/api/jobs', (c) => c.json(jobs.page({ limit: limitParam(c.req.query('limit'), 50, 200), cursor: cursorParam(c.req.query('cursor'), /^\d{1,15}$/) })));
  app.get('/api/jobs/:id', (c) => {
    const job = jobs.get(c.req.param('id'));
    if (!job) throw new HttpError(404, `no job ${JSON.stringify(c.req.param('id'))}`, 'NOT_FOUND');
    return c.json({ job });
  });
  app.post('/api/jobs/:id/stop', (c) => {
    const job = jobs.stop(c.req.param('id'));
    if (!job) throw new HttpError(404, `no job ${JSON.stringify(c.req.param('id'))}`, 'NOT_FOUND');
    return c.json({ job });
  });

  /** Progress of a training job from its records: steps done of the budget. */
  function trainingProgress(setProgress: (done: number, total: number | null) => void) {
    let total: number | null = null;
    return (record: LogRecord) => {
      if (record.type === 'run.created') total = initialBudget(record.data.settings);
      else if (record.type === 'step.finished') setProgress(record.data.step, total);
    };
  }

  function refuseWhileExporting(runId: string): void {
    if (jobs.running().some((j) => j.kind === 'export' && j.runId === runId)) {
      throw new HttpError(409, `run ${runId} is being exported by this server: try again in a moment`, 'RETRACE_RUN_LOCKED');
    }
  }

  /** What a failed job shows: never the words of a file its run reads (data-roots.ts). */
  function jobError(kind: string, runId: string, config: Partial<Record<string, unknown>> | null | undefined): (err: unknown) => string {
    const reads = readsUserFiles(config);
    return (err) => publicJobError(err, { readsUserFiles: reads, what: `${kind} ${runId}`, log });
  }

  async function claimRunId(config: ConfigInput): Promise<string> {
    const runId = config.runId ?? newRunId();
    if ((await store.hasRun(runId)) || jobs.writing(runId)) throw new HttpError(409, `run "${runId}" already exists`, 'RETRACE_RUN_EXISTS');
    return runId;
  }

  app.post('/api/train', async (c) => {
    const body = await jsonBody(c);
    allowOnly(body, ['config']);
    const config = await roots.check(configParam(body.config, 'config'), 'config', { loopback });
    resolveConfig(config as Record<string, unknown>); // the whole config, defaults filled in, must hold
    const runId = await claimRunId(config);
    const job = jobs.start('train', runId, { config }, async (h) => {
      const progress = trainingProgress(h.setProgress);
      const { train } = await import('../run/train.js');
      return train({
        store,
        cwd,
        config: { ...config, runId },
        signal: h.signal,
        command: 'ui train',
        onRecord: (r) => {
          progress(r);
          h.onRecord(r);
        },
      });
    }, jobError('train', runId, config));
    hub.notify('runs');
    return c.json({ job, runId }, 202);
  });

  app.post('/api/runs/:id/branch', async (c) => {
    const parentId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['point', 'overrides']);
    const point = pointParam(body.point ?? 'last', 'point');
    const overrides = await roots.check(configParam(body.overrides, 'overrides'), 'overrides', { loopback });
    refuseWhileExporting(parentId);
    const { history } = await runOrThrow(parentId);
    const resolved = history.resolvePoint(point);
    // What a branch inherits, as `retrace branch` decides it (run/environment.ts inheritableConfig).
    const inherited = inheritableConfig(history.created);
    resolveConfig(inherited, overrides as Record<string, unknown>);
    const runId = await claimRunId(overrides);
    const warnings: string[] = [];
    const job = jobs.start('branch', runId, { parent: parentId, point, step: resolved.step, seq: resolved.seq, overrides, warnings }, async (h) => {
      const progress = trainingProgress(h.setProgress);
      const { branch } = await import('../run/branch.js');
      return branch(`${parentId}@${point}`, {
        store,
        cwd,
        overrides: { ...overrides, runId },
        signal: h.signal,
        command: 'ui branch',
        onWarning: (m) => note(warnings, m),
        onRecord: (r) => {
          progress(r);
          h.onRecord(r);
        },
      });
    }, jobError('branch', runId, { ...inherited, ...overrides }));
    hub.notify('runs');
    return c.json({ job, runId }, 202);
  });

  app.post('/api/runs/:id/resume', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, []);
    const busy = jobs.touching(runId);
    if (busy.length > 0) throw new HttpError(409, `run ${runId} is busy in this server (${busy.map((j) => `${j.kind} ${j.runId}`).join(', ')}): wait for it to finish`, 'RETRACE_RUN_LOCKED');
    const { history, row } = await runOrThrow(runId, true);
    if (row.writer) throw new HttpError(409, `run ${runId} is being written by process ${row.writer.pid} (${row.writer.command})`, 'RETRACE_RUN_LOCKED');
    const final = history.snapshotAt().snapshot;
    const resumable = canResume(final);
    if (!resumable.ok) throw new HttpError(409, `run ${runId} cannot be resumed: ${resumable.reason}`, 'NOT_RESUMABLE');
    await cache.settle(runId);
    if (jobs.touching(runId).length > 0) throw new HttpError(409, `run ${runId} became busy in this server: try again`, 'RETRACE_RUN_LOCKED');
    const warnings: string[] = [];
    const job = jobs.start('resume', runId, { warnings }, async (h) => {
      const progress = trainingProgress(h.setProgress);
      progress(history.records[0]!);
      const { resume } = await import('../run/resume.js');
      return resume(runId, {
        store,
        cwd,
        signal: h.signal,
        command: 'ui resume',
        onWarning: (m) => note(warnings, m),
        onRecord: (r) => {
          progress(r);
          h.onRecord(r);
        },
      });
    }, jobError('resume', runId, history.created.config));
    hub.notify('runs');
    return c.json({ job, runId }, 202);
  });

  app.post('/api/runs/:id/export', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['checkpoint', 'name']);
    const checkpoint = checkpointParam(body.checkpoint);
    const name = exportNameParam(body.name);
    // One job at a time on a run being exported: the export opens it for writing in this process.
    const busy = jobs.touching(runId);
    if (busy.length > 0) throw new HttpError(409, `run ${runId} is busy in this server (${busy.map((j) => `${j.kind} ${j.runId}`).join(', ')}): wait for it to finish`, 'RETRACE_RUN_LOCKED');
    const { history } = await runOrThrow(runId, true);
    const exportable = canExport(history.snapshotAt().snapshot);
    if (!exportable.ok) throw new HttpError(409, `run ${runId} cannot be exported: ${exportable.reason}`, 'NOT_STOPPED');
    const resolved = resolvePoint(history, checkpoint, 'checkpoint');
    const ckpt = checkpointHolding(history, resolved);
    const out = path.join(exportDir, name ?? `${runId}-${ckpt ? `ckpt${ckpt.data.index}` : `step${resolved.step}`}`);
    let failure: unknown = null;
    // No read of the run may be in flight when the export opens it (and none starts afterwards:
    // the cache never reads a run a job of this process writes).
    await cache.settle(runId);
    if (jobs.touching(runId).length > 0) throw new HttpError(409, `run ${runId} became busy in this server: try again`, 'RETRACE_RUN_LOCKED');
    const exportError = jobError('export', runId, history.created.config);
    const job = jobs.start('export', runId, { checkpoint: ckpt ? ckpt.data.index : null, step: resolved.step, out }, async () => {
      try {
        const { exportRun } = await import('../run/export.js');
        return await exportRun(runId, { store, cwd, checkpoint: ckpt ? `ckpt:${ckpt.data.index}` : checkpoint, out });
      } catch (err) {
        failure = err;
        throw err;
      }
    }, exportError);
    const done = (await jobs.wait(job.id)) as JobInfo;
    // The route answers with the job's public message (never a user file's words) and the
    // status the error's kind maps to.
    if (failure) throw Object.assign(failure as Error, { message: exportError(failure) });
    return c.json({ job: done, result: done.result });
  });

  app.post('/api/runs/:id/replay', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['from', 'to']);
    const from = body.from === undefined || body.from === null ? undefined : pointParam(body.from, 'from');
    const to = body.to === undefined || body.to === null ? undefined : pointParam(body.to, 'to');
    refuseWhileExporting(runId);
    const { history } = await runOrThrow(runId);
    const target = to ? history.resolvePoint(to) : null;
    const start = from ? history.resolvePoint(from).checkpoint : target ? target.checkpoint : (history.checkpointByIndex(0) ?? history.checkpoints[0]);
    if (!start) throw new HttpError(409, `run ${runId} has no checkpoint to replay from yet`, 'NOT_READY');
    const endSeq = target ? target.seq : history.lastSeq;
    const total = Math.max(1, endSeq - start.seq);
    const job = jobs.start('replay', runId, { from: from ?? `ckpt:${start.data.index}`, to: to ?? null, fromStep: start.data.step }, async (h) =>
      (await import('../run/replay.js')).replay(runId, {
        store,
        cwd,
        verify: true,
        from,
        to,
        onRecord: (r) => {
          if (h.signal.aborted) throw new Error('replay stopped from the dashboard');
          h.setProgress(Math.min(total, Math.max(0, r.seq - start.seq)), total);
        },
      }),
      jobError('replay', runId, history.created.config),
    );
    return c.json({ job }, 202);
  });

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
        closed = true;
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

/** Streams open at once; a page uses two. */
const MAX_STREAMS = 64;

/** Keeps the first 20 warnings of a job, each cut to 500 characters: a job's params stay small. */
function note(warnings: string[], message: string): void {
  if (warnings.length < 20) warnings.push(message.length > 500 ? `${message.slice(0, 500)}…` : message);
}

function emptyRow(runId: string): RunRow {
  return runRow(runId, null, null, null);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function send(stream: SSEStreamingApi, event: string, data: unknown, id?: string): Promise<void> {
  await stream.writeSSE({ event, data: JSON.stringify(data), ...(id !== undefined ? { id } : {}) });
}
