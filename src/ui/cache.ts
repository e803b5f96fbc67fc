// The dashboard's view of the store: each run's validated records, kept in memory and brought up
// to date incrementally.
//
// A run another process writes is read without ever taking its lock, through
// `store.openRun(id, 'read')`, which opens a private copy of the run's LevelDB (see store.ts); only
// the records after the ones already cached are decoded. Copying is not free, so it happens only
// when the run's files changed (a signature of the LevelDB folder's file names, sizes and mtimes,
// committed.json and owner.json: RunStore.changeToken) and at most once per
// `minCopyIntervalMs` per run, however many pages watch it. The writer makes its steps visible at
// least every second (run-log.ts flushes a pending record that is a second old).
//
// A run this process writes (trained from the page) is never read from disk while it trains: the
// writer's `onRecord` hands each record to `push`, so the page sees a step as soon as it is logged
// and the training loop is not slowed by reads.
import { hostname } from 'node:os';
import path from 'node:path';
import { UnknownRunError } from '../log/errors.js';
import { parseRecord, type LogRecord } from '../log/events.js';
import { RUN_ID_RE } from '../log/store.js';
import type { EventLog, RunStore } from '../storage/types.js';
import { RunHistory } from '../run/history.js';
import { buildOverview, createdInfo, rowOf, runRow, type RunRow, type RunView } from './view.js';
import { RunReader } from '../run/reader.js';
import { runLiveness } from '../run/inspect.js';
import { parseSummary, summarizeRun, summaryIsCurrent } from '../run/summary.js';

export interface RunWriter {
  pid: number;
  hostname: string;
  command: string;
  since: string;
  /** Trained by this server process (from the page). */
  inProcess: boolean;
}

export interface CachedRun {
  runId: string;
  /** The run's records in seq order (the cache appends to this array: read it synchronously). */
  records: LogRecord[];
  /** Null while the run has no run.created record yet (just claimed) or could not be read. */
  history: RunHistory | null;
  row: RunRow;
}

interface Entry {
  runId: string;
  records: LogRecord[];
  history: RunHistory | null;
  /** records.length when `history` was built. */
  historyLength: number;
  row: RunRow;
  rowStale: boolean;
  writer: RunWriter | null;
  signature: string;
  dirty: boolean;
  lastReadAt: number;
  error: string | null;
}

export interface RunCacheOptions {
  /** Copies of a run another process writes are taken at most this often (ms). */
  minCopyIntervalMs: number;
  /** Runs this process is writing right now (kept up to date by `push`). */
  writingHere: (runId: string) => boolean;
}

export class RunCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly host = hostname();

  constructor(
    private readonly store: RunStore,
    private readonly options: RunCacheOptions,
  ) {}

  /** A record this process just logged for the run (the onRecord of a training started here). */
  push(runId: string, record: LogRecord): void {
    let e = this.entries.get(runId);
    if (!e) {
      if (record.seq !== 0) return; // the next get reads the run from disk
      e = this.newEntry(runId);
      this.entries.set(runId, e);
    }
    if (record.seq === e.records.length) {
      e.records.push(record);
      e.rowStale = true;
    } else if (record.seq > e.records.length) {
      e.dirty = true; // a gap: read it from disk
    }
  }

  /** Marks a run as changed on disk in a way `push` did not cover (a job of this process ended). */
  markDirty(runId: string): void {
    const e = this.entries.get(runId);
    if (e) e.dirty = true;
  }

  /** Run ids in the store, sorted; forgets runs that were removed. */
  async ids(): Promise<string[]> {
    const ids = await this.store.listRuns();
    const present = new Set(ids);
    for (const id of this.entries.keys()) if (!present.has(id) && !this.options.writingHere(id)) this.entries.delete(id);
    return ids;
  }

  /** The run, brought up to date (UnknownRunError if it does not exist). Concurrent callers share one read. */
  async get(runId: string, opts: { force?: boolean } = {}): Promise<CachedRun> {
    for (;;) {
      const running = this.inflight.get(runId);
      if (!running) break;
      await running.catch(() => {});
      const e = this.entries.get(runId);
      if (e && !e.dirty && !opts.force) return this.view(e);
    }
    const p = this.refresh(runId, opts.force === true);
    this.inflight.set(runId, p);
    try {
      await p;
    } finally {
      if (this.inflight.get(runId) === p) this.inflight.delete(runId);
    }
    const out = this.entries.get(runId);
    if (!out) throw new UnknownRunError(runId, await this.store.listRuns());
    return this.view(out);
  }

  /**
   * The run's row from the summary stored with its committed mark (summary.ts), without reading its
   * log: null when the run is written by this process, held by another, or its summary is missing
   * or may be behind its log (then `get` reads the log).
   */
  async summaryRow(runId: string): Promise<RunRow | null> {
    if (this.options.writingHere(runId)) return null;
    const [stored, writer] = await Promise.all([this.store.readSummary(runId).catch(() => null), this.writer(runId)]);
    const summary = parseSummary(stored);
    if (!summary || !summaryIsCurrent(summary, writer !== null)) return null;
    const { version: _version, ...rest } = summary;
    void _version;
    return rowOf(rest, writer, null);
  }

  /**
   * A run's first paint without loading its log (view.ts buildOverview): its row, creation facts
   * and an overview of its series. Null for a run this process writes (its records are in memory:
   * `get` is as fast). UnknownRunError if there is no such run.
   */
  async overview(runId: string): Promise<{ run: RunRow; created: ReturnType<typeof createdInfo>; view: RunView & { sampled: boolean } } | null> {
    if (this.options.writingHere(runId)) return null;
    const writer = await this.writer(runId);
    const log = await this.store.openRun(runId, 'read');
    try {
      const reader = await RunReader.open(log, runId);
      const view = await buildOverview(reader);
      const { snapshot } = await reader.stateAfter();
      const { version: _version, ...summary } = summarizeRun({ created: reader.created, createdAt: reader.createdAt }, snapshot, reader.lastSeq, reader.lastAt);
      void _version;
      const run: RunRow = rowOf(summary, writer, null);
      return { run, created: createdInfo(reader.created), view };
    } finally {
      await log.close();
    }
  }

  /** Waits until no read of the run is in flight (before a job of this process opens it for writing). */
  async settle(runId: string): Promise<void> {
    for (let p = this.inflight.get(runId); p; p = this.inflight.get(runId)) await p.catch(() => {});
  }

  private newEntry(runId: string): Entry {
    return {
      runId,
      records: [],
      history: null,
      historyLength: -1,
      row: runRow(runId, null, null, null),
      rowStale: true,
      writer: null,
      signature: '',
      dirty: false,
      lastReadAt: 0,
      error: null,
    };
  }

  /** Brings the history and the row up to the records (at most once per get, not per record). */
  private view(e: Entry): CachedRun {
    if (e.historyLength !== e.records.length) {
      e.historyLength = e.records.length;
      e.rowStale = true;
      if (e.records.length > 0 && e.records[0]!.type === 'run.created') {
        try {
          // A copy: a history handed out stays consistent while the cache appends.
          e.history = new RunHistory(e.runId, e.records.slice());
        } catch (err) {
          e.history = null;
          e.error = (err as Error).message;
        }
      } else {
        e.history = null;
      }
    }
    if (e.rowStale) {
      e.rowStale = false;
      try {
        e.row = runRow(e.runId, e.history, e.writer, e.error);
      } catch (err) {
        e.row = runRow(e.runId, null, e.writer, (err as Error).message);
      }
    }
    return { runId: e.runId, records: e.records, history: e.history, row: e.row };
  }

  /** A cheap fingerprint of everything a new record changes (RunStore.changeToken). */
  private async signature(runId: string): Promise<string> {
    return this.store.changeToken(runId);
  }

  /** Who holds the run open for writing (RunStore.holder: a dead local writer holds nothing). */
  private async writer(runId: string): Promise<RunWriter | null> {
    const o = await this.store.holder(runId).catch(() => null);
    if (!o) return null;
    return { pid: o.pid, hostname: o.hostname, command: o.command, since: o.startedAt, inProcess: o.pid === process.pid && o.hostname === this.host };
  }

  private setWriter(e: Entry, writer: RunWriter | null): void {
    if (JSON.stringify(e.writer) !== JSON.stringify(writer)) {
      e.writer = writer;
      e.rowStale = true;
    }
  }

  private async refresh(runId: string, force: boolean): Promise<void> {
    if (!RUN_ID_RE.test(runId)) throw new UnknownRunError(runId, await this.store.listRuns());
    let e = this.entries.get(runId) ?? null;
    if (this.options.writingHere(runId)) {
      // Written here: `push` keeps it current and it is never read from disk meanwhile — no copy
      // to slow the training, and no second handle on a LevelDB this process is opening or closing.
      const here: RunWriter = { pid: process.pid, hostname: this.host, command: 'retrace ui', since: '', inProcess: true };
      if (!e) {
        if (!(await this.store.hasRun(runId))) throw new UnknownRunError(runId, await this.store.listRuns());
        e = this.entries.get(runId) ?? this.newEntry(runId);
        this.entries.set(runId, e);
      }
      this.setWriter(e, here);
      return;
    }
    const [exists, signature, writer] = await Promise.all([this.store.hasRun(runId), this.signature(runId), this.writer(runId)]);
    if (!exists) {
      if (!this.options.writingHere(runId)) this.entries.delete(runId);
      throw new UnknownRunError(runId, await this.store.listRuns());
    }
    const local = this.options.writingHere(runId);
    if (local) return this.refresh(runId, force); // a job of this process started meanwhile
    const effectiveWriter = writer;
    e = this.entries.get(runId) ?? null;
    if (e && !e.dirty && !force && signature === e.signature) {
      this.setWriter(e, effectiveWriter);
      return;
    }
    // Another process's run: a copy at most every minCopyIntervalMs (the next poll catches up).
    if (e && !local && !force && !e.dirty && e.error === null && Date.now() - e.lastReadAt < this.options.minCopyIntervalMs) {
      this.setWriter(e, effectiveWriter);
      return;
    }
    if (!e) {
      e = this.newEntry(runId);
      this.entries.set(runId, e);
    }
    e.dirty = false;
    e.lastReadAt = Date.now();
    this.setWriter(e, effectiveWriter);
    let error: string | null = null;
    try {
      await this.readNew(e);
      e.signature = signature;
    } catch (err) {
      if (err instanceof UnknownRunError) {
        this.entries.delete(runId);
        throw err;
      }
      // Keep what was read; say why the rest is missing; the next poll tries again.
      error = (err as Error).message;
    }
    if (error !== e.error) {
      e.error = error;
      e.rowStale = true;
    }
  }

  /**
   * Appends the records after the cached ones. Records `push` added meanwhile are not added twice
   * (each is appended only at its own seq); a log that is not the one cached (removed and made
   * again) is read from 0. A record that fails validation stops the read, keeping those before it.
   */
  private async readNew(e: Entry): Promise<void> {
    const log = await this.store.openRun(e.runId, 'read');
    try {
      const have = e.records.length;
      let first = true;
      for await (const raw of log.read({ from: Math.max(0, have - 1) })) {
        if (first && have > 0) {
          first = false;
          const last = e.records[have - 1]!;
          if (raw.seq !== last.seq || raw.type !== last.type || raw.at !== last.at) {
            await this.reload(e, log);
            return;
          }
          continue;
        }
        first = false;
        if (raw.seq < e.records.length) continue;
        if (raw.seq > e.records.length) throw new Error(`internal: run ${e.runId} read event ${raw.seq} after ${e.records.length - 1}`);
        e.records.push(parseRecord(e.runId, raw));
      }
      if (first && have > 0) await this.reload(e, log); // the log is now shorter than what was cached
    } finally {
      await log.close();
    }
  }

  private async reload(e: Entry, log: EventLog): Promise<void> {
    e.records = [];
    e.historyLength = -1;
    for await (const raw of log.read({ from: 0 })) e.records.push(parseRecord(e.runId, raw));
  }
}
