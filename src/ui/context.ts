// What the dashboard's routes and streams share: the server's settings, the store and its read
// cache, this server's jobs, the hub that wakes streams, and reading a run for a request (a run a
// job of this server is creating shows up at once, as "starting").
import { UnknownRunError } from '../log/errors.js';
import type { RunStore } from '../storage/types.js';
import { RunCache, type CachedRun } from './cache.js';
import type { DataRoots } from './data-roots.js';
import { Hub } from './hub.js';
import { Jobs, type JobInfo } from './jobs.js';
import { HttpError } from './validate.js';
import { runRow, type RunRow } from './view.js';

/** The server's settings, fixed at start (see UiServerOptions in server.ts). */
export interface UiSettings {
  store: RunStore;
  cwd: string;
  /** Absolute. */
  exportDir: string;
  roots: DataRoots;
  host: string;
  loopback: boolean;
  /** ms, at least 50. */
  pollMs: number;
  log: (line: string) => void;
}

export interface UiContext extends UiSettings {
  hub: Hub;
  jobs: Jobs;
  cache: RunCache;
  /** Set when the server closes: every stream's loop ends. */
  closed: boolean;
  /** Counts changes of any job: a stream sends the jobs list when it moved. */
  jobsVersion: number;
  /** Every run's row (or the page after `cursor`, at most `limit`, by id); a run removed meanwhile
   * is left out, an unreadable one says why. `more`: runs follow the page. */
  listRows(page?: { cursor: string | null; limit: number }): Promise<RunRow[] & { more?: boolean }>;
  /** The row of a run a job of this server is creating (before its first record). */
  startingRow(job: JobInfo): RunRow;
  /** A run with its history; HttpError 409 NOT_READY while it has none (starting or unreadable). */
  runOrThrow(runId: string, force?: boolean): Promise<CachedRun & { history: NonNullable<CachedRun['history']> }>;
  /** A run, or — while a job of this server is creating it — a placeholder with no records. */
  runOrStarting(runId: string): Promise<CachedRun>;
}

export function createContext(settings: UiSettings): UiContext {
  const { store, pollMs } = settings;
  const hub = new Hub();
  const jobs = new Jobs((runId, record) => {
    cache.push(runId, record);
    hub.notify(`run:${runId}`);
    hub.notify('runs');
  });
  const cache = new RunCache(store, { minCopyIntervalMs: pollMs, writingHere: (id) => jobs.writing(id) });
  const ctx: UiContext = { ...settings, hub, jobs, cache, closed: false, jobsVersion: 0, listRows, startingRow, runOrThrow, runOrStarting };
  jobs.subscribe((job) => {
    ctx.jobsVersion += 1;
    hub.notify('jobs');
    if (job.status === 'done' || job.status === 'failed') {
      cache.markDirty(job.runId);
      hub.notify(`run:${job.runId}`);
      hub.notify('runs');
    }
  });

  /** Every run's row; a run removed meanwhile is left out, an unreadable one says why. */
  async function listRows(page?: { cursor: string | null; limit: number }): Promise<RunRow[] & { more?: boolean }> {
    let ids = await cache.ids();
    // Runs a job of this server is about to create show up at once.
    const starting = jobs.running().filter((job) => (job.kind === 'train' || job.kind === 'branch') && !ids.includes(job.runId));
    let more = false;
    if (page) {
      // Only the page's runs are read: the first rows of a long list show without waiting for the rest.
      const all = [...ids, ...starting.map((j) => j.runId)].filter((id) => page.cursor === null || id > page.cursor).sort();
      more = all.length > page.limit;
      const wanted = new Set(all.slice(0, page.limit));
      ids = ids.filter((id) => wanted.has(id));
      starting.splice(0, starting.length, ...starting.filter((j) => wanted.has(j.runId)));
    }
    const read = await Promise.all(
      ids.map(async (id): Promise<RunRow | null> => {
        try {
          // One small read per run when its stored summary is current; the log only otherwise.
          return (await cache.summaryRow(id)) ?? (await cache.get(id)).row;
        } catch (err) {
          if (err instanceof UnknownRunError) return null;
          return { ...emptyRow(id), state: 'unreadable', error: (err as Error).message };
        }
      }),
    );
    const rows: RunRow[] & { more?: boolean } = read.filter((r): r is RunRow => r !== null);
    for (const job of starting) if (!rows.some((r) => r.runId === job.runId)) rows.push(startingRow(job));
    rows.sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
    rows.more = more;
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

  return ctx;
}

function emptyRow(runId: string): RunRow {
  return runRow(runId, null, null, null);
}
