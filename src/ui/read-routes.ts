// The dashboard's read routes: the server's settings, the runs (a page at a time), a run's series
// and marks, the machine state at any event, a run's events, and this server's jobs. None writes.
import type { Hono } from 'hono';
import { DEFAULTS, OPTIMIZERS } from '../config.js';
import { UnknownRunError } from '../log/errors.js';
import { RUN_ID_RE } from '../log/store.js';
import { RETRACE_VERSION } from '../run/environment.js';
import { resolveAt, stateAt } from '../run/inspect.js';
import { PointError } from '../run/points.js';
import type { UiContext } from './context.js';
import { atParam, cursorParam, HttpError, limitParam, runIdParam, seqParam } from './validate.js';
import { buildView, createdInfo, lightRecord } from './view.js';

export function readRoutes(app: Hono, ctx: UiContext): void {
  const { store, exportDir, roots, host, loopback, pollMs, cache, jobs, listRows, runOrThrow, runOrStarting } = ctx;

  app.get('/api/meta', (c) =>
    c.json({
      version: RETRACE_VERSION,
      store: store.location,
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
    const runs = await listRows({ cursor, limit });
    const nextCursor = runs.more && runs.length > 0 ? runs[runs.length - 1]!.runId : null;
    return c.json({ runs, jobs: jobs.list(), nextCursor });
  });

  app.get('/api/runs/:id', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const since = seqParam(c.req.query('since'), 'since', -1);
    // A page opening a run draws first from an overview read without loading the log (the full
    // series follows with `since`); a run that cannot be read that way goes the usual way.
    if (c.req.query('overview') === '1' && since < 0) {
      const first = await cache.overview(runId).catch((err: unknown) => {
        if (err instanceof UnknownRunError && !jobs.running().some((j) => j.runId === runId)) throw err;
        return null;
      });
      if (first) return c.json(first);
    }
    const entry = await runOrStarting(runId);
    return c.json({
      run: entry.row,
      created: entry.history ? createdInfo(entry.history.created) : null,
      view: buildView(entry.records, since),
    });
  });

  app.get('/api/runs/:id/state', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const at = atParam(c.req.query('at'));
    let { history } = await runOrThrow(runId);
    let seq: number;
    try {
      seq = await resolveAt(history, at);
    } catch (err) {
      // The page may know events this cache has not read yet (a run's page draws first from an
      // overview read straight from its log, while the cache reads a run at most once per poll):
      // read the log again before saying the run has no such point.
      if (!(err instanceof PointError)) throw err;
      ({ history } = await runOrThrow(runId, true));
      seq = await resolveAt(history, at);
    }
    const view = await stateAt(history, seq, 6);
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

  // Newest first, `limit` at a time (default 50, at most 200).
  app.get('/api/jobs', (c) => c.json(jobs.page({ limit: limitParam(c.req.query('limit'), 50, 200), cursor: cursorParam(c.req.query('cursor'), /^\d{1,15}$/) })));
  app.get('/api/jobs/:id', (c) => {
    const job = jobs.get(c.req.param('id'));
    if (!job) throw new HttpError(404, `no job ${JSON.stringify(c.req.param('id'))}`, 'NOT_FOUND');
    return c.json({ job });
  });
}
