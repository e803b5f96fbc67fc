// Read-only views of a store: the runs as a lineage tree, a run's events, and the machine state at
// any event. None of these touch tfjs, and all work while another process trains the run.
import { stateName } from '../../machines/fold.js';
import type { StopReason } from '../../machines/training.events.js';
import type { TrainingContext, TrainingStateName } from '../../machines/training.machine.js';
import { decodeFloat, parseRecord, type LogRecord } from '../log/events.js';
import type { Store } from '../log/store.js';
import { withStore, type StoreOption } from './common.js';
import { loadHistory, PointError, type RunHistory } from './history.js';
import { scheduleView, type ScheduleView } from './schedule.js';

export interface RunListing {
  runId: string;
  parent: { runId: string; point: string } | null;
  state: TrainingStateName;
  stopReason: StopReason | null;
  step: number;
  /** Extra detail for people and the UI (not part of the `runs --json` contract's required keys). */
  createdAt: string;
  backend: string;
  dataset: string;
  model: string;
  bestMetric: number | null;
  bestCheckpoint: number | null;
  /** Set when the run's log could not be read; the other fields are then placeholders. */
  error?: string;
}

export async function listRuns(opts: StoreOption = {}): Promise<RunListing[]> {
  return withStore(opts, async (store) => {
    const ids = await store.listRuns();
    const out: RunListing[] = [];
    for (const runId of ids) out.push(await describeRun(store, runId));
    return out;
  });
}

export async function describeRun(store: Store, runId: string): Promise<RunListing> {
  try {
    const history = await readRun(store, runId);
    const { snapshot } = history.snapshotAt();
    const c = snapshot.context;
    const created = history.created;
    return {
      runId,
      parent: created.parent ? { runId: created.parent.runId, point: created.parent.point } : null,
      state: stateName(snapshot),
      stopReason: c.stopReason,
      step: c.step,
      createdAt: history.records[0]!.at,
      backend: created.backend.name,
      dataset: created.dataset.name,
      model: created.model.spec,
      bestMetric: c.best ? c.best.metric : null,
      bestCheckpoint: c.best ? c.best.index : null,
    };
  } catch (err) {
    return {
      runId,
      parent: null,
      state: 'idle',
      stopReason: null,
      step: 0,
      createdAt: '',
      backend: '',
      dataset: '',
      model: '',
      bestMetric: null,
      bestCheckpoint: null,
      error: (err as Error).message,
    };
  }
}

/** Reads a run's whole validated history (through a private copy if another process writes it). */
export async function readRun(store: Store, runId: string): Promise<RunHistory> {
  const log = await store.openRun(runId, 'read');
  try {
    return await loadHistory(log, runId);
  } finally {
    await log.close();
  }
}

/** A run's events in a seq range, validated, in order. */
export async function* readLog(store: Store, runId: string, range: { from?: number; to?: number } = {}): AsyncGenerator<LogRecord> {
  const log = await store.openRun(runId, 'read');
  try {
    for await (const raw of log.read(range)) yield parseRecord(runId, raw);
  } finally {
    await log.close();
  }
}

export interface StateView {
  runId: string;
  /** The event the state is shown after. */
  seq: number;
  state: TrainingStateName;
  step: number;
  examplesSeen: number;
  lr: number;
  stopReason: StopReason | null;
  context: TrainingContext;
  /** `name` is the checkpoint as a point: `ckpt:K`, or `int:N` for an interrupt checkpoint. */
  nearestCheckpoint: { index: number; name: string; kind: string; seq: number; step: number; weightsHash: string } | null;
  /** Training losses and evaluations up to this event. */
  metrics: { lastLoss: number | null; evaluations: Array<{ step: number; valLoss: number; valAccuracy: number }> };
  /** Events around the selected one (for time travel views). */
  around: LogRecord[];
  /** The resolved schedule (training examples, examples per virtual epoch, steps per checkpoint,
   * total steps), after any budget extension up to this event. */
  schedule: ScheduleView;
}

/** Resolves `--at`: an event number or `step:N` (default: the last event). */
export function resolveAt(history: RunHistory, at?: string): number {
  if (at === undefined) return history.lastSeq;
  if (/^\d+$/.test(at)) {
    const seq = Number(at);
    if (seq > history.lastSeq) throw new PointError(`run ${history.runId} has no event ${seq} (its last event is ${history.lastSeq})`);
    return seq;
  }
  const m = /^step:(\d+)$/.exec(at);
  if (!m) throw new PointError(`bad --at "${at}": expected an event number or step:N`);
  const seq = history.seqOfStep(Number(m[1]));
  if (seq === null) throw new PointError(`run ${history.runId} has no step ${m[1]}`);
  return seq;
}

export function stateAt(history: RunHistory, seq: number, aroundCount = 5): StateView {
  const { snapshot, checkpoint } = history.snapshotAt(seq);
  const c = snapshot.context;
  let lastLoss: number | null = null;
  const evaluations: StateView['metrics']['evaluations'] = [];
  for (let i = 0; i <= seq; i += 1) {
    const r = history.records[i]!;
    if (r.type === 'step.finished') lastLoss = decodeFloat(r.data.loss);
    else if (r.type === 'eval.finished') evaluations.push({ step: r.data.step, valLoss: decodeFloat(r.data.valLoss), valAccuracy: r.data.valAccuracy });
  }
  return {
    runId: history.runId,
    seq,
    state: stateName(snapshot),
    step: c.step,
    examplesSeen: c.examplesSeen,
    lr: c.lr,
    stopReason: c.stopReason,
    context: c,
    nearestCheckpoint: checkpoint
      ? {
          index: checkpoint.data.index,
          name: history.checkpointName(checkpoint),
          kind: checkpoint.data.kind,
          seq: checkpoint.seq,
          step: checkpoint.data.step,
          weightsHash: checkpoint.data.weightsHash,
        }
      : null,
    metrics: { lastLoss, evaluations },
    around: history.records.slice(Math.max(0, seq - aroundCount), seq + aroundCount + 1),
    schedule: scheduleView(history.created, c),
  };
}

export async function showState(runId: string, opts: StoreOption & { at?: string } = {}): Promise<StateView> {
  return withStore(opts, async (store) => {
    const history = await readRun(store, runId);
    return stateAt(history, resolveAt(history, opts.at));
  });
}

export class RemoveError extends Error {
  override name = 'RemoveError';
}

/** Removes a run; refuses while other runs branch from it unless `recursive`. Returns removed ids. */
export async function removeRun(runId: string, opts: StoreOption & { recursive?: boolean } = {}): Promise<string[]> {
  return withStore(opts, async (store) => {
    const all = await listRunsIn(store);
    if (!all.some((r) => r.runId === runId)) await store.openRun(runId, 'read'); // throws UnknownRunError
    const children = (id: string): string[] => all.filter((r) => r.parent?.runId === id).map((r) => r.runId);
    const direct = children(runId);
    if (direct.length > 0 && !opts.recursive) {
      throw new RemoveError(`run ${runId} has branches (${direct.join(', ')}); pass --recursive to remove them too`);
    }
    const order: string[] = [];
    const visit = (id: string) => {
      for (const child of children(id)) visit(child);
      order.push(id);
    };
    visit(runId);
    for (const id of order) await store.removeRun(id);
    return order;
  });
}

async function listRunsIn(store: Store): Promise<RunListing[]> {
  const out: RunListing[] = [];
  for (const id of await store.listRuns()) out.push(await describeRun(store, id));
  return out;
}
