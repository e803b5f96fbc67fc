// The dashboard's live updates: server-sent event streams of one run (its new events and row) and
// of the runs list with this server's jobs. Each stream waits on the hub (hub.ts) for a change and
// re-reads at most a few times a second; at most MAX_STREAMS are open at once.
import type { Context, Hono } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { UnknownRunError } from '../log/errors.js';
import type { CachedRun } from './cache.js';
import type { UiContext } from './context.js';
import { HttpError, runIdParam, seqParam } from './validate.js';
import { buildView, type RunRow } from './view.js';

export function streamRoutes(app: Hono, ctx: UiContext): void {
  const { hub, jobs, pollMs, listRows, runOrStarting } = ctx;

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
        while (!stream.aborted && !ctx.closed) {
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
        while (!ctx.closed && watchers > 0) {
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
        while (!stream.aborted && !ctx.closed) {
          if (sentRows !== rowsVersion) {
            sentRows = rowsVersion;
            await send(stream, 'runs', { runs: rows });
          }
          if (sentJobs !== ctx.jobsVersion) {
            sentJobs = ctx.jobsVersion;
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
}

/** Streams open at once; a page uses two. */
const MAX_STREAMS = 64;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function send(stream: SSEStreamingApi, event: string, data: unknown, id?: string): Promise<void> {
  await stream.writeSSE({ event, data: JSON.stringify(data), ...(id !== undefined ? { id } : {}) });
}
