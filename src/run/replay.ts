// `retrace replay`: re-executes a run from a checkpoint and compares every fact it computes (each
// step's loss bits, each checkpoint's weight and optimizer hashes, each transition) with the log.
// Never writes to the run. `--to` materialises the exact weights at any step, even between
// checkpoints, by re-executing from the nearest checkpoint before it.
import type { BackendRequest, Dataset, TrainerState } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';
import type { RunStore } from '../storage/types.js';
import { withStore, type RecordListener, type StoreOption } from './common.js';
import { drive } from './driver.js';
import { DivergenceError, Emitter } from './emitter.js';
import { backendMismatch, EnvironmentError, environmentDifferences, rebuildEnvironment, type Relocation, type RunEnvironment } from './environment.js';
import { loadHistory, restoreMachine, type CheckpointRecord, type RunHistory } from './history.js';
import { parsePoint } from './points.js';
import { eventAfterCheckpoint } from './resume.js';
import { loadTrainerState } from './snapshots.js';
import { branchPointProblem, checkpoint0Problems } from './start-state.js';
import { PointSyntaxError } from './points.js';

export interface ReplayOptions extends StoreOption {
  /** Compare with the log (default true when no `to` is given). */
  verify?: boolean;
  /** Stop at this point (any point, see points.ts): the weights there are the result. */
  to?: string;
  /** Start from the checkpoint at or before this point (`ckpt:K`, `best`, `last`, ...) instead of the run's start. */
  from?: string;
  backend?: BackendRequest;
  dataset?: Dataset;
  model?: ModelFactory;
  /** Where the run's module or CSV moved (accepted when the fingerprint matches). */
  relocate?: Relocation;
  onRecord?: RecordListener;
  onWarning?: (message: string) => void;
  /** Receives the environment at the end (to export the weights) before it is disposed. */
  onFinish?: (env: RunEnvironment, step: number) => Promise<void>;
}

export interface ReplayResult {
  runId: string;
  identical: boolean;
  /** The first step whose facts differ from the log, or null. */
  firstDivergence: number | null;
  /** The event where they first differ, or null. */
  divergentSeq: number | null;
  message: string | null;
  fromCheckpoint: number;
  fromStep: number;
  toStep: number;
  eventsVerified: number;
  weightsHash: string;
  backendMismatch: string | null;
  /** Why it diverged, when the log explains it: a resume on another backend recorded before the
   * divergent event (exactness holds within one backend only). Null otherwise. */
  cause: string | null;
}

/** The first backend change the log records at or before `seq` (a process that attached on
 * another backend than the run's), as one sentence; null if none. */
export function recordedBackendChange(history: RunHistory, seq: number): string | null {
  for (const r of history.records) {
    if (r.seq > seq) break;
    if (r.type === 'process.attached' && r.data.backendMismatch) {
      return `the run was continued on another backend at event ${r.seq} (\`${r.data.command}\`: ${r.data.backendMismatch}); results are exact within one backend only, so a replay on one backend cannot match steps computed on the other`;
    }
  }
  return null;
}

export async function replay(runId: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  // A malformed point is bad usage: said before anything is opened.
  const to = opts.to === undefined ? undefined : parsePoint(opts.to, '--to');
  const fromPoint = opts.from === undefined ? undefined : parsePoint(opts.from, '--from');
  return withStore(opts, async (store) => {
    const log = await store.openRun(runId, 'read');
    let history: RunHistory;
    try {
      history = await loadHistory(log, runId);
    } finally {
      await log.close();
    }
    const target = to ? await history.resolvePoint(to) : null;
    const start: CheckpointRecord = fromPoint
      ? (await history.resolvePoint(fromPoint)).checkpoint
      : target
        ? target.checkpoint
        : (history.checkpointByIndex(0) ?? history.checkpoints[0]!);
    if (!start) throw new Error(`run ${runId} has no checkpoint to replay from`);
    if (target && opts.from && target.seq < start.seq) {
      throw new PointSyntaxError(`bad range: --from ${opts.from} (event ${start.seq}) comes after --to ${opts.to} (event ${target.seq}); give --from at or before --to`);
    }
    const result = await replayFrom(store, history, start, { ...opts, stopAtStep: target?.step });
    // Re-execution starts from checkpoint 0's blobs, so it cannot see a wrong start by itself.
    const verifying = opts.verify ?? !opts.to;
    const startProblems = verifying && !opts.from ? await checkStartState(store, history) : [];
    if (startProblems.length === 0) return result;
    const message = `run ${runId}: ${startProblems.join('; ')}${result.message ? ` (and re-executing from it: ${result.message})` : ''}`;
    return { ...result, identical: false, firstDivergence: 0, divergentSeq: history.checkpointByIndex(0)?.seq ?? 0, message };
  });
}

/** checkpoint0Problems and branchPointProblem, with the parent's state at the branch point read from the parent's log
 * (when the parent is still in the store and its log holds that state). */
async function checkStartState(store: RunStore, history: RunHistory): Promise<string[]> {
  const created = history.created;
  let parentAt: { weightsHash: string; what: string } | null = null;
  if (created.parent && (await store.hasRun(created.parent.runId))) {
    const log = await store.openRun(created.parent.runId, 'read');
    try {
      const parent = await loadHistory(log, created.parent.runId);
      const r = parent.records[created.parent.seq];
      if (r?.type === 'checkpoint.committed') parentAt = { weightsHash: r.data.weightsHash, what: `its ${r.data.kind} checkpoint ${r.data.index}` };
      else if (r?.type === 'snapshot.taken') parentAt = { weightsHash: r.data.weightsHash, what: `its snapshot at step ${r.data.step}` };
    } finally {
      await log.close();
    }
  }
  const checkpoint0 = history.checkpointByIndex(0)?.data ?? null;
  const atPoint = branchPointProblem(created, checkpoint0, parentAt);
  return [...checkpoint0Problems(created, checkpoint0), ...(atPoint ? [atPoint] : [])];
}

/** Re-executes `history` from `start`; also used by branch to reach a step between checkpoints. */
export async function replayFrom(
  store: RunStore,
  history: RunHistory,
  start: CheckpointRecord,
  opts: ReplayOptions & { stopAtStep?: number },
): Promise<ReplayResult> {
  const created = history.created;
  const env = await rebuildEnvironment(created, opts, 'replay');
  try {
    const differences = environmentDifferences(created, env);
    if (differences.length > 0) throw new EnvironmentError(`cannot replay run ${history.runId}: ${differences.join('; ')}`);
    const mismatch = backendMismatch(created.backend, env.backend);
    if (mismatch) opts.onWarning?.(`run ${history.runId}: ${mismatch}`);
    const state: TrainerState = await loadTrainerState(store.blobs, start.data);
    env.session.restore(state);
    const from = eventAfterCheckpoint(history, start.seq);
    const emitter = new Emitter({
      runId: history.runId,
      log: null,
      expected: history.records.slice(from),
      nextSeq: from,
      snapshot: restoreMachine(start.data),
      onRecord: opts.onRecord,
    });
    let divergence: DivergenceError | null = null;
    try {
      await drive({ runId: history.runId, created, session: env.session, emitter, blobs: null, stopAtEndOfLog: true, stopAtStep: opts.stopAtStep });
    } catch (err) {
      if (!(err instanceof DivergenceError)) throw err;
      divergence = err;
    }
    const toStep = emitter.snapshot.context.step;
    if (!divergence) await opts.onFinish?.(env, toStep);
    return {
      runId: history.runId,
      identical: divergence === null,
      firstDivergence: divergence ? divergence.step : null,
      divergentSeq: divergence ? divergence.seq : null,
      message: divergence ? divergence.message : null,
      cause: divergence ? recordedBackendChange(history, divergence.seq) : null,
      fromCheckpoint: start.data.index,
      fromStep: start.data.step,
      toStep,
      eventsVerified: emitter.verified,
      weightsHash: env.session.weightsHash(),
      backendMismatch: mismatch,
    };
  } finally {
    env.session.dispose();
  }
}
