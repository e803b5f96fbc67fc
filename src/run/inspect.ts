// Read-only views of a store: the runs as a lineage tree, a run's events, and the machine state at
// any event. None of these touch tfjs, and all work while another process trains the run.
import { canResume } from '../../machines/queries.js';
import { stat } from 'node:fs/promises';
import { stateName } from '../../machines/fold.js';
import type { StopReason } from '../../machines/training.events.js';
import type { TrainingContext, TrainingStateName } from '../../machines/training.machine.js';
import { parseRecord, RECORD_SCHEMAS, type LogRecord } from '../log/events.js';
import { Limiter } from '../log/limiter.js';
import { isErrno } from '../log/processes.js';
import { storeSpec, withStore, type StoreOption } from './common.js';
import { MEMORY_PREFIX } from '../storage/open.js';
import { loadHistory, type PointTimeline, type RunHistory } from './history.js';
import { RunReader } from './reader.js';
import { parseSummary, realMetric, summarizeRun, summaryIsCurrent, type RunSummaryDoc } from './summary.js';
import type { RunStore } from '../storage/types.js';
import { checkpointName, formatPoint, parsePoint, PointError, PointSyntaxError, resolvePoint, type Point } from './points.js';
import { scheduleView, type ScheduleView } from './schedule.js';

/**
 * Whether anything is running a run, the one definition `runs`, `state` and the dashboard share:
 * `"live"` while a process holds the run open for writing; `"crashed"` when the run is not
 * stopped (nor exported) and no process holds it (its writer died: `retrace resume` continues
 * it); null when it is stopped or exported and nothing holds it, or when its log cannot be read
 * (state unknown) and nothing holds it.
 */
export type Liveness = 'live' | 'crashed' | null;

export function runLiveness(state: string | null, held: boolean): Liveness {
  if (held) return 'live';
  if (state === null || state === 'stopped' || state === 'exported') return null;
  return 'crashed';
}

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
  /** The best checkpoint's monitored metric, with its real sign (see RunSummaryDoc). */
  bestMetric: number | null;
  bestCheckpoint: number | null;
  /** The metric `bestMetric` is (null when the run cannot be read). */
  monitor: 'valLoss' | 'valAccuracy' | null;
  /** The one-line reason the run's log cannot be read, else null; when set, state, stopReason,
   * step and the details are placeholders (`runs --json` prints them as null). */
  error: string | null;
  liveness: Liveness;
  /** The run's whole summary (null when its log cannot be read). */
  summary: RunSummaryDoc | null;
}

/** How many runs `listRuns` describes at once. */
const LIST_CONCURRENCY = 16;

/** Every run of the store with its state (an unreadable run with its error). A store folder that
 * does not exist has no runs: the list is empty and nothing is created. Each run costs one small
 * read (the summary stored with its committed mark) unless it is being written or crashed. */
export async function listRuns(opts: StoreOption = {}): Promise<RunListing[]> {
  const spec = typeof opts.store === 'object' ? null : storeSpec(opts.store, opts.cwd);
  if (spec !== null && !spec.startsWith(MEMORY_PREFIX) && !opts.create) {
    try {
      await stat(spec);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
  }
  return withStore(opts, async (store) => {
    // Runs are described a few at a time: each is a couple of small file reads that the disk
    // serves in parallel (one at a time, 300 runs took 0.5 ms each).
    const limiter = new Limiter(LIST_CONCURRENCY);
    const ids = await store.listRuns();
    return Promise.all(ids.map((runId) => limiter.run(() => describeRun(store, runId))));
  });
}

function listing(summary: RunSummaryDoc, held: boolean): RunListing {
  return {
    runId: summary.runId,
    parent: summary.parent ? { runId: summary.parent.runId, point: summary.parent.point } : null,
    state: summary.state,
    stopReason: summary.stopReason,
    step: summary.step,
    createdAt: summary.createdAt,
    backend: summary.backend,
    dataset: summary.dataset,
    model: summary.model,
    bestMetric: summary.bestMetric,
    bestCheckpoint: summary.bestCheckpoint,
    monitor: summary.monitor,
    error: null,
    liveness: runLiveness(summary.state, held),
    summary,
  };
}

/** A run's summary now: the one stored with its committed mark when that is current (see
 * summaryIsCurrent), else read from its log (the end state, folded from its last checkpoint). */
export async function currentSummary(store: RunStore, runId: string, held: boolean): Promise<RunSummaryDoc> {
  const stored = parseSummary(await store.readSummary(runId).catch(() => null));
  if (stored && summaryIsCurrent(stored, held)) return stored;
  const log = await store.openRun(runId, 'read');
  try {
    const reader = await RunReader.open(log, runId);
    const { snapshot } = await reader.stateAfter();
    return summarizeRun({ created: reader.created, createdAt: reader.createdAt }, snapshot, reader.lastSeq, reader.lastAt);
  } finally {
    await log.close();
  }
}

export async function describeRun(store: RunStore, runId: string): Promise<RunListing> {
  const held = (await store.holder(runId)) !== null;
  try {
    return listing(await currentSummary(store, runId, held), held);
  } catch (err) {
    // Its parent from parent.json (written at creation): an unreadable branch is still a branch.
    const recorded = await store.recordedParent(runId).catch(() => undefined);
    return {
      runId,
      parent: typeof recorded === 'string' ? { runId: recorded, point: '?' } : null,
      state: 'idle',
      stopReason: null,
      step: 0,
      createdAt: '',
      backend: '',
      dataset: '',
      model: '',
      bestMetric: null,
      bestCheckpoint: null,
      monitor: null,
      error: (err as Error).message.split('\n')[0]!,
      liveness: runLiveness(null, held),
      summary: null,
    };
  }
}

/** Reads a run's whole validated history (through a private copy if another process writes it). */
export async function readRun(store: RunStore, runId: string): Promise<RunHistory> {
  const log = await store.openRun(runId, 'read');
  try {
    return await loadHistory(log, runId);
  } finally {
    await log.close();
  }
}

/** Opens a run for reading and hands `fn` a RunReader on it (closed afterwards). */
export async function withReader<T>(store: RunStore, runId: string, fn: (reader: RunReader) => Promise<T>): Promise<T> {
  const log = await store.openRun(runId, 'read');
  try {
    return await fn(await RunReader.open(log, runId));
  } finally {
    await log.close();
  }
}

export interface LogQuery {
  /** First event (inclusive): a point (see points.ts; one the run lacks is a PointError) or an
   * event number (past the end: nothing, so a follower can ask for what comes next); default 0. */
  from?: number | string;
  /** Last event (inclusive): a point or an event number; default the end of the log. */
  to?: number | string;
  /** Only events of these types (e.g. `checkpoint.committed`); default all. */
  types?: readonly string[];
}

/**
 * A run's events between two points, validated, in order, optionally of some types only.
 * Throws PointSyntaxError for a malformed point, an unknown type or `from` after `to` (bad usage),
 * PointError for a point the run does not have.
 */
export async function* readLog(store: RunStore, runId: string, query: LogQuery = {}): AsyncGenerator<LogRecord> {
  const from = query.from === undefined ? undefined : typeof query.from === 'number' ? ({ kind: 'seq', seq: query.from } as const) : parsePoint(query.from, '--from');
  const to = query.to === undefined ? undefined : typeof query.to === 'number' ? ({ kind: 'seq', seq: query.to } as const) : parsePoint(query.to, '--to');
  const types = query.types ? new Set(query.types) : null;
  for (const t of types ?? []) {
    if (!Object.hasOwn(RECORD_SCHEMAS, t)) throw new PointSyntaxError(`bad --type "${t}": expected one of ${Object.keys(RECORD_SCHEMAS).join(', ')}`);
  }
  const checkOrder = (a: number | undefined, b: number | undefined) => {
    if (a !== undefined && b !== undefined && a > b) {
      const show = (p: Point, seq: number) => (p.kind === 'seq' ? `${seq}` : `${formatPoint(p)} (event ${seq})`);
      throw new PointSyntaxError(`bad range: --from ${show(from!, a)} comes after --to ${show(to!, b)}; give --from at or before --to`);
    }
  };
  const wanted = (r: LogRecord) => types === null || types.has(r.type);
  if ((from === undefined || from.kind === 'seq') && (to === undefined || to.kind === 'seq')) {
    // Event numbers only: read just that range (the rest of the log may even be damaged).
    const range = { from: from?.seq, to: to?.seq };
    checkOrder(range.from, range.to);
    const log = await store.openRun(runId, 'read');
    try {
      // An event number typed as a point (`--from 479`) must exist; a numeric range from a program
      // (a follower asking for what comes after the last event it saw) is just empty.
      const last = await log.lastSeq();
      for (const [seq, typed] of [[range.from, typeof query.from === 'string'], [range.to, typeof query.to === 'string']] as const) {
        if (typed && seq !== undefined && seq > last) throw new PointError(`run ${runId} has no event ${seq} (its last event is ${last})`);
      }
      for await (const raw of log.read(range)) {
        const r = parseRecord(runId, raw);
        if (wanted(r)) yield r;
      }
    } finally {
      await log.close();
    }
    return;
  }
  const log = await store.openRun(runId, 'read');
  try {
    // Only the range is read (and what resolving its points needs), not the whole log.
    const reader = await RunReader.open(log, runId);
    const a = from ? (await resolvePoint(reader, from)).seq : 0;
    const b = to ? (await resolvePoint(reader, to)).seq : reader.lastSeq;
    checkOrder(a, b);
    for await (const raw of log.read({ from: a, to: b })) {
      const r = parseRecord(runId, raw);
      if (wanted(r)) yield r;
    }
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
  /** The best checkpoint so far and its monitored metric with its real sign (the context's
   * `best.metric` is the machine's ordering: an accuracy negated); null before any evaluation. */
  best: { checkpoint: number; step: number; monitor: 'valLoss' | 'valAccuracy'; metric: number | null } | null;
}

/** `state --json`: the view plus the run's facts now (as `runs --json` gives them). */
export interface StateReport extends StateView {
  /** Always null here: a run whose log cannot be read fails `state` with that reason. */
  error: null;
  /** The run now, not at the event shown (see runLiveness). */
  liveness: Liveness;
  /** The run now: whether `retrace resume` continues it (machines/queries.ts canResume of its
   * last state, and no process holds it): the same answer the dashboard gives. */
  resumable: boolean;
}

/** Resolves `--at`: any point (see points.ts; default: the last event) to the event it names. */
export async function resolveAt(timeline: PointTimeline, at?: string): Promise<number> {
  if (at === undefined) return timeline.lastSeq;
  return (await resolvePoint(timeline, at, '--at')).seq;
}

/** The view of a run after event `seq`, read through a RunReader (see reader.ts for what it costs)
 * or from a history already in memory. */
export async function stateAt(run: RunReader | RunHistory, seq: number, aroundCount = 5): Promise<StateView> {
  const reader = run instanceof RunReader ? run : await RunReader.open(run.asLog(), run.runId);
  const { snapshot, checkpoint, lastLoss } = await reader.stateAfter(seq);
  const c = snapshot.context;
  const evaluations = (await reader.evaluations(seq)).map((r) => ({ step: r.data.step, valLoss: r.data.valLoss, valAccuracy: r.data.valAccuracy }));
  const name = !checkpoint ? null : checkpoint.data.kind === 'interrupt' ? checkpointName(await reader.checkpoints(), checkpoint) : `ckpt:${checkpoint.data.index}`;
  return {
    runId: reader.runId,
    seq,
    state: stateName(snapshot),
    step: c.step,
    examplesSeen: c.examplesSeen,
    lr: c.lr,
    stopReason: c.stopReason,
    context: c,
    nearestCheckpoint: checkpoint
      ? { index: checkpoint.data.index, name: name!, kind: checkpoint.data.kind, seq: checkpoint.seq, step: checkpoint.data.step, weightsHash: checkpoint.data.weightsHash }
      : null,
    metrics: { lastLoss, evaluations },
    around: await reader.range(seq - aroundCount, seq + aroundCount),
    schedule: scheduleView(reader.created, c),
    best: c.best ? { checkpoint: c.best.index, step: c.best.step, monitor: reader.created.settings.monitor, metric: realMetric(reader.created.settings.monitor, c.best.metric) } : null,
  };
}

/** `state --json`: the state at a point (default the last event) and the run's liveness now. */
export async function showState(runId: string, opts: StoreOption & { at?: string } = {}): Promise<StateReport> {
  return withStore(opts, async (store) =>
    withReader(store, runId, async (reader) => {
      const view = await stateAt(reader, await resolveAt(reader, opts.at));
      const held = (await store.holder(runId)) !== null;
      const last = (await reader.stateAfter()).snapshot;
      return { ...view, error: null, liveness: runLiveness(stateName(last), held), resumable: !held && canResume(last).ok };
    }),
  );
}

export class RemoveError extends Error {
  override name = 'RemoveError';
}

/**
 * Removes a run, and with `recursive` its branches (children first), as one step: every
 * precondition is checked for the whole subtree before anything is deleted (Store.removeRuns), so
 * a refused or failed `rm` removes nothing. Returns the removed ids.
 *
 * Parent links come from each run's run.created, or, when its log cannot be read, from the
 * parent.json createRun wrote. A run whose log cannot be read and that has no parent.json (older
 * retrace) may be a branch of any run whose log reads: removing any such run is refused, naming
 * it, until it is fixed or removed itself. A run without events and without parent.json (a
 * creator killed before its first event) is no branch. Throws UnknownRunError, RemoveError (has
 * branches, or may have), RunLockedError (a run of the subtree is being written).
 */
export async function removeRun(runId: string, opts: StoreOption & { recursive?: boolean } = {}): Promise<string[]> {
  return withStore(opts, async (store) => {
    if (!(await store.hasRun(runId))) await store.openRun(runId, 'read'); // throws UnknownRunError
    const links = await parentLinks(store);
    const children = (id: string): string[] => links.filter((r) => r.parent === id).map((r) => r.runId);
    const target = links.find((r) => r.runId === runId);
    if (target?.readable) {
      const unknown = links.filter((r) => r.parent === undefined && r.runId !== runId);
      if (unknown.length > 0) {
        const u = unknown[0]!;
        throw new RemoveError(
          `run ${runId} may have branches: the log of run ${u.runId} cannot be read (${u.error}) and its parent is unknown; ` +
            `fix it (\`retrace fsck ${u.runId}\`) or remove it first (\`retrace rm ${u.runId}\`)`,
        );
      }
    }
    const direct = children(runId);
    if (direct.length > 0 && !opts.recursive) {
      throw new RemoveError(`run ${runId} has branches (${direct.join(', ')}); pass --recursive to remove them too`);
    }
    const order: string[] = [];
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return; // a parent link loop (only a forged log has one)
      seen.add(id);
      for (const child of children(id)) visit(child);
      order.push(id);
    };
    visit(runId);
    await store.removeRuns(order);
    return order;
  });
}

interface ParentLink {
  runId: string;
  /** The parent's id, null for no parent, undefined when unknown (log unreadable, no parent.json). */
  parent: string | null | undefined;
  readable: boolean;
  error?: string;
}

async function parentLinks(store: RunStore): Promise<ParentLink[]> {
  const out: ParentLink[] = [];
  for (const id of await store.listRuns()) {
    const r = await describeRun(store, id);
    if (!r.error) {
      out.push({ runId: id, parent: r.parent?.runId ?? null, readable: true });
      continue;
    }
    let parent = await store.recordedParent(id);
    if (parent === undefined && (await store.isEmptyRun(id))) parent = null;
    out.push({ runId: id, parent, readable: false, error: r.error });
  }
  return out;
}
