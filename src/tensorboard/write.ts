// `retrace tensorboard RUN… --out DIR`: each run's scalars and hyperparameters as a TensorBoard
// event file `DIR/RUN/events.out.tfevents.*`, and with `follow`, appended to as the runs train.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogRecord } from '../log/events.js';
import type { RunStore } from '../storage/types.js';
import { openStoreOption, type StoreOption } from '../run/common.js';
import { readLog, readRun } from '../run/inspect.js';
import { encodeEvents, EventFileAppender, eventFileName, writeEventFileAtomic } from './event-file.js';
import { RunProjection } from './projection.js';
import type { TbEvent } from './proto.js';

export class TensorBoardError extends Error {
  override name = 'TensorBoardError';
}

export interface TensorBoardOptions extends StoreOption {
  /** The TensorBoard log folder (`tensorboard --logdir DIR`); each run gets `DIR/RUN/`. */
  out: string;
  /** Keep appending each run's new events as it trains (polling its log every `intervalMs`). */
  follow?: boolean;
  /** With `follow`: go on after every run has stopped (a resume continues it), until `signal`. */
  keepFollowing?: boolean;
  /** Milliseconds between polls when following (default 1000). */
  intervalMs?: number;
  /** Ends following (Ctrl-C); what was read is written. */
  signal?: AbortSignal;
  onWarning?: (message: string) => void;
}

export interface TensorBoardRunResult {
  runId: string;
  /** The event file (absolute path). */
  file: string;
  /** Events in the file (file version, hyperparameters, scalars, session starts). */
  events: number;
  /** Scalar points written (one per tag per step or evaluation). */
  scalars: number;
  /** The last log event read. */
  lastSeq: number;
}

interface Followed {
  result: TensorBoardRunResult;
  projection: RunProjection;
  done: boolean;
  /** Polls in a row that found no writer and nothing new. */
  quiet?: number;
  appender?: EventFileAppender;
}

function count(events: TbEvent[]): { events: number; scalars: number } {
  return { events: events.length, scalars: events.reduce((n, e) => n + (e.kind === 'scalars' ? e.scalars.length : 0), 0) };
}

/**
 * The event file of a whole run from its records: its name (from the creating process, so
 * writing it again replaces it) and its bytes. Pure: the same records give the same bytes.
 */
export function runEventFile(records: LogRecord[]): { name: string; bytes: Buffer; projection: RunProjection; events: TbEvent[] } {
  const projection = new RunProjection();
  const events = records.flatMap((r) => projection.take(r));
  const name = eventFileName({
    seconds: projection.createdAt ?? 0,
    hostname: projection.creator?.hostname ?? 'localhost',
    pid: projection.creator?.pid ?? 0,
    n: 0,
  });
  return { name, bytes: encodeEvents(events), projection, events };
}

/**
 * Writes `DIR/RUN/events.out.tfevents.*` for each run: scalars (`loss`, `lr`, `examples_seen` per
 * step; `val_loss`, `val_acc` per evaluation, see tags.ts) at the run's step plus its origin, its
 * config as hparams, a SessionLog START at each resume. Every run is read and validated before any
 * file is written, and the files replace their previous versions atomically, so a failed call
 * changes nothing. With `follow`, then appends new events until every run has stopped and no
 * process holds it (or until `signal`, with `keepFollowing`).
 *
 * Throws UnknownRunError for a run the store does not have, StoreError for a missing store,
 * TensorBoardError for bad arguments.
 */
export async function writeTensorBoard(runIds: string[], opts: TensorBoardOptions): Promise<{ out: string; runs: TensorBoardRunResult[] }> {
  if (runIds.length === 0) throw new TensorBoardError('name at least one run to write (retrace tensorboard RUN… --out DIR)');
  if (!opts.out) throw new TensorBoardError('--out DIR is required: the folder to give `tensorboard --logdir`');
  const out = path.resolve(opts.cwd ?? process.cwd(), opts.out);
  const ids = [...new Set(runIds)];
  const store = typeof opts.store === 'object' ? opts.store : await openStoreOption(opts);
  try {
    const histories = [];
    for (const id of ids) histories.push(await readRun(store, id));
    const files = histories.map((h) => ({ runId: h.runId, ...runEventFile(h.records) }));
    await writeAll(out, files);
    const followed: Followed[] = files.map((f) => ({
      projection: f.projection,
      done: false,
      result: { runId: f.runId, file: path.join(out, f.runId, f.name), ...count(f.events), lastSeq: f.projection.lastSeq },
    }));
    if (opts.follow) {
      try {
        for (const f of followed) f.appender = new EventFileAppender(f.result.file, 'extend');
        await follow(store, followed, opts);
      } finally {
        for (const f of followed) f.appender?.close();
      }
    }
    return { out, runs: followed.map((f) => f.result) };
  } finally {
    if (typeof opts.store !== 'object') await store.close();
  }
}

/** Writes every file, or none: folders made and files renamed only once all are written. */
async function writeAll(out: string, files: Array<{ runId: string; name: string; bytes: Buffer }>): Promise<void> {
  const made: string[] = [];
  try {
    for (const f of files) {
      const first = await fsp.mkdir(path.join(out, f.runId), { recursive: true });
      if (first) made.push(first);
    }
  } catch (err) {
    await removeMade(made);
    throw new TensorBoardError(`cannot write to ${out}: ${(err as Error).message}`);
  }
  try {
    for (const f of files) await writeEventFileAtomic(path.join(out, f.runId, f.name), f.bytes);
  } catch (err) {
    await removeMade(made);
    throw err;
  }
}

async function removeMade(made: string[]): Promise<void> {
  for (const dir of made.reverse()) await fsp.rm(dir, { recursive: true, force: true });
}

async function follow(store: RunStore, runs: Followed[], opts: TensorBoardOptions): Promise<void> {
  const interval = opts.intervalMs ?? 1000;
  while (!opts.signal?.aborted && runs.some((r) => !r.done)) {
    try {
      await sleep(interval, undefined, { signal: opts.signal });
    } catch {
      // Aborted: one last read below, so what was logged until Ctrl-C is in the file.
    }
    for (const run of runs) {
      if (run.done) continue;
      const { runId } = run.result;
      try {
        // Whether a process still writes the run, asked before reading: a writer that ends in
        // between leaves its last records for the next poll, never unread.
        const live = (await store.liveWriter(runId)) !== null;
        const fresh: TbEvent[] = [];
        let read = 0;
        for await (const record of readLog(store, runId, { from: run.projection.lastSeq + 1 })) {
          fresh.push(...run.projection.take(record));
          read += 1;
        }
        run.appender!.append(fresh);
        const c = count(fresh);
        run.result.events += c.events;
        run.result.scalars += c.scalars;
        run.result.lastSeq = run.projection.lastSeq;
        // Done once no process has written it and nothing new came for three polls in a row: one
        // quiet poll can fall between a writer's flushes while its owner.json is being read.
        run.quiet = !live && read === 0 ? (run.quiet ?? 0) + 1 : 0;
        if (run.quiet >= 3 && !opts.keepFollowing) run.done = true;
      } catch (err) {
        const gone = (err as Error).name === 'UnknownRunError';
        if (gone) run.done = true;
        opts.onWarning?.(`run ${runId}: ${(err as Error).message}${gone ? '; no longer following it' : '; trying again'}`);
      }
    }
  }
}
