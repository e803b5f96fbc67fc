// What every run operation shares: where the store is, how a run id is made, and the summary a
// run reports (the `--json` contract of train, resume and branch).
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { stateName, type TrainingSnapshot } from '../../machines/fold.js';
import type { StopReason } from '../../machines/training.events.js';
import type { TrainingStateName } from '../../machines/training.machine.js';
import type { LogRecord, ProcessAttached } from '../log/events.js';
import { stat } from 'node:fs/promises';
import { StoreError } from '../log/errors.js';
import { MEMORY_PREFIX, openRunStore } from '../storage/open.js';
import type { RunStore } from '../storage/types.js';
import type { BackendInfo } from '../train/types.js';
import type { RunHistory } from './history.js';

export const DEFAULT_STORE = '.retrace';

/** --store wins, then RETRACE_STORE, then ./.retrace. */
export function storeDir(explicit?: string, cwd = process.cwd()): string {
  return path.resolve(cwd, explicit ?? process.env.RETRACE_STORE ?? DEFAULT_STORE);
}

export interface StoreOption {
  /** A store (a folder, see openRunStore for the other forms) or an open RunStore. */
  store?: string | RunStore;
  cwd?: string;
  /** Create the store folder when it does not exist. Only an operation that creates a run
   * (train) does; everything else fails on a missing folder and leaves the path untouched (a
   * mistyped --store must not leave an empty store behind). Default false. */
  create?: boolean;
}

/** Throws StoreError when `dir` does not exist (nothing is created). */
export async function assertStoreFolder(dir: string): Promise<void> {
  try {
    await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return; // Store.open names other problems
    throw new StoreError(`no retrace store at ${dir} (the folder does not exist); \`retrace train --store ${dir}\` creates one`, dir);
  }
}

/** The store a spec names, as openRunStore takes it: `memory:NAME` as it is, anything else the
 * folder it resolves to (--store, then RETRACE_STORE, then ./.retrace). */
export function storeSpec(explicit?: string, cwd = process.cwd()): string {
  const given = explicit ?? process.env.RETRACE_STORE;
  return given?.startsWith(MEMORY_PREFIX) ? given : storeDir(given, cwd);
}

/** Opens the store named by the option (and closes it afterwards only if it opened it). A folder
 * that does not exist is a StoreError unless `create`. */
export async function openStoreOption(opt: StoreOption): Promise<RunStore> {
  const spec = storeSpec(typeof opt.store === 'string' ? opt.store : undefined, opt.cwd);
  if (!spec.startsWith(MEMORY_PREFIX) && !opt.create) await assertStoreFolder(spec);
  return openRunStore(spec);
}

/** Runs `fn` with the store named by the option (closing it afterwards only if it opened it). */
export async function withStore<T>(opt: StoreOption, fn: (store: RunStore) => Promise<T>): Promise<T> {
  if (typeof opt.store === 'object' && opt.store !== null) return fn(opt.store);
  const store = await openStoreOption(opt);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A readable, sortable, collision-safe id: run-20261128-224829-3f9a. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `run-${stamp}-${randomBytes(2).toString('hex')}`;
}

export interface RunSummary {
  runId: string;
  state: TrainingStateName;
  stopReason: StopReason | null;
  step: number;
  examplesSeen: number;
  bestCheckpoint: number | null;
  /** SHA-256 of the best checkpoint's own weights (what `export --checkpoint best` writes), null
   * when there is no best checkpoint. */
  bestWeightsHash: string | null;
  /** SHA-256 of the final weights, after the last step (null only if the log has no record of them). */
  weightsHash: string | null;
}

export function summarize(runId: string, snapshot: TrainingSnapshot, weightsHash: string | null): RunSummary {
  const c = snapshot.context;
  return {
    runId,
    state: stateName(snapshot),
    stopReason: c.stopReason,
    step: c.step,
    examplesSeen: c.examplesSeen,
    bestCheckpoint: c.best?.index ?? null,
    bestWeightsHash: c.best?.weightsHash ?? null,
    weightsHash,
  };
}

/** A finished run's summary from its log alone: the weights after the last step are the last
 * checkpoint's or snapshot's at that step. */
export function summarizeHistory(history: RunHistory): RunSummary {
  const { snapshot } = history.snapshotAt();
  const step = snapshot.context.step;
  let hash: string | null = null;
  for (let i = history.records.length - 1; i >= 0 && hash === null; i -= 1) {
    const r = history.records[i]!;
    if ((r.type === 'checkpoint.committed' || r.type === 'snapshot.taken') && r.data.step === step) hash = r.data.weightsHash;
  }
  return summarize(history.runId, snapshot, hash);
}

export function processAttached(command: string, backend: BackendInfo, fromSeq: number | null, backendMismatch: string | null): Extract<
  import('../log/events.js').NewRecord,
  { type: 'process.attached' }
> {
  const data: ProcessAttached = { pid: process.pid, hostname: hostname(), command, backend, fromSeq, backendMismatch };
  return { type: 'process.attached', data };
}

/** Events of interest to a caller (progress bars, the UI's live view). */
export type RecordListener = (record: LogRecord) => void;
