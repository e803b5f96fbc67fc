// What the dashboard draws, digested from a run's records: columnar series (steps, evaluations,
// checkpoints, state transitions) that the page appends to as a run grows, and "light" records
// (without tensor lists, topologies or stored machine snapshots) for event tables.
import { runLiveness, type Liveness } from '../run/inspect.js';
import { summarizeRun, type RunSummaryDoc } from '../run/summary.js';
import { stateName } from '../../machines/fold.js';
import { storedFloat, type StoredFloat } from '../../machines/training.events.js';
import { encodeRecordData, type LogRecord, type RunCreated } from '../log/events.js';
import type { RunHistory } from '../run/history.js';
import type { RunReader } from '../run/reader.js';
import type { RunWriter } from './cache.js';

/** One row of the runs list. */
export interface RunRow {
  runId: string;
  parent: { runId: string; point: string; step: number; seq: number } | null;
  /** Absolute step offset of this run's step 0 (0 for a root; a branch continues its parent's axis). */
  originStep: number;
  /** `starting` while a run being created has no records yet. */
  state: string;
  stopReason: string | null;
  /** Whether a checkpoint was exported (rules 2: the run stays stopped, and resumable if interrupted). */
  exported: boolean;
  step: number;
  totalSteps: number | null;
  bestMetric: number | null;
  bestCheckpoint: number | null;
  monitor: string | null;
  backend: string;
  dataset: string;
  model: string;
  optimizer: string;
  createdAt: string;
  lastEventAt: string;
  lastSeq: number;
  /** The process appending to the run right now, if any. */
  writer: RunWriter | null;
  /** live / crashed / null, as `retrace runs --json` says it (runLiveness). */
  liveness: Liveness;
  /** Whether `retrace resume` (and the resume button) continues it: interrupted or crashed, and no
   * process holds it (machines/queries.ts canResume, as `retrace state` decides it). */
  resumable: boolean;
  /** Whether a checkpoint can be exported now (canExport: stopped, or crashed under rules 2) and no
   * process holds it, as `retrace export` decides. */
  exportable: boolean;
  /** The log could not be read (the rest is what was read before, or placeholders). */
  error: string | null;
}

export interface RunView {
  /** First seq this view covers (a delta starts after what the page has). */
  from: number;
  lastSeq: number;
  /** Losses in their stored form ("NaN" for NaN): JSON has no NaN. */
  steps: { seq: number[]; step: number[]; loss: StoredFloat[]; lr: number[] };
  evals: Array<{ seq: number; step: number; valLoss: StoredFloat; valAccuracy: number }>;
  checkpoints: Array<{ seq: number; index: number; kind: string; step: number; examplesSeen: number; weightsHash: string }>;
  transitions: Array<{ seq: number; from: string; to: string; step: number; cause: number; causeType: string }>;
  /** Other facts worth a mark: stop requests, resumes, exports, attached processes, snapshots. */
  marks: Array<{ seq: number; type: string; step: number; text: string }>;
}

/** The step the run had done after event `seq` (the last step.finished at or before it). */
function stepBefore(records: readonly LogRecord[], seq: number): number {
  for (let i = Math.min(seq, records.length - 1); i >= 0; i -= 1) {
    const r = records[i]!;
    if (r.type === 'step.finished') return r.data.step;
  }
  return 0;
}

/** The records after `since` (-1 = all) as series. */
export function buildView(records: readonly LogRecord[], since: number): RunView {
  const from = Math.max(0, since + 1);
  const view: RunView = {
    from,
    lastSeq: records.length - 1,
    steps: { seq: [], step: [], loss: [], lr: [] },
    evals: [],
    checkpoints: [],
    transitions: [],
    marks: [],
  };
  let step = from > 0 ? stepBefore(records, from - 1) : 0;
  for (let i = from; i < records.length; i += 1) {
    const r = records[i]!;
    switch (r.type) {
      case 'step.finished':
        step = r.data.step;
        view.steps.seq.push(r.seq);
        view.steps.step.push(r.data.step);
        view.steps.loss.push(storedFloat(r.data.loss));
        view.steps.lr.push(r.data.lr);
        break;
      case 'eval.finished':
        view.evals.push({ seq: r.seq, step: r.data.step, valLoss: storedFloat(r.data.valLoss), valAccuracy: r.data.valAccuracy });
        break;
      case 'checkpoint.committed':
        view.checkpoints.push({
          seq: r.seq,
          index: r.data.index,
          kind: r.data.kind,
          step: r.data.step,
          examplesSeen: r.data.examplesSeen,
          weightsHash: r.data.weightsHash,
        });
        break;
      case 'state.changed':
        view.transitions.push({ seq: r.seq, from: r.data.from, to: r.data.to, step, cause: r.data.cause, causeType: r.data.causeType });
        break;
      case 'run.created':
        break;
      default:
        view.marks.push({ seq: r.seq, type: r.type, step, text: describeRecord(r) });
    }
  }
  return view;
}

function num(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(6))) : String(v);
}

/** One line about a record, for people. */
export function describeRecord(r: LogRecord): string {
  switch (r.type) {
    case 'run.created': {
      const d = r.data;
      return `created: ${d.dataset.name} ${d.model.spec} ${d.optimizer} seed ${d.seed} on ${d.backend.name}${d.parent ? `, branched from ${d.parent.runId}@${d.parent.point}` : ''}`;
    }
    case 'step.finished':
      return `step ${r.data.step}: loss ${num(r.data.loss)}, lr ${r.data.lr}${r.data.weightsFinite === false ? ', weights not finite' : ''}`;
    case 'eval.finished':
      return `evaluation at step ${r.data.step}: val loss ${num(r.data.valLoss)}, accuracy ${Number(r.data.valAccuracy.toPrecision(4))}`;
    case 'checkpoint.committed':
      return `checkpoint ${r.data.kind === 'interrupt' ? 'int:' : ''}${r.data.index} (${r.data.kind}${r.data.kind === 'interrupt' ? ', not evaluated' : ''}) at step ${r.data.step}, weights ${r.data.weightsHash.slice(0, 12)}`;
    case 'state.changed':
      return `${r.data.from} → ${r.data.to} (by event ${r.data.cause}, ${r.data.causeType})`;
    case 'stop.requested':
      return `stop requested (${r.data.source})`;
    case 'run.resumed':
      return 'resumed';
    case 'export.finished':
      return `exported checkpoint ${r.data.kind === 'interrupt' ? 'int:' : ''}${r.data.checkpoint} to ${r.data.out}`;
    case 'run.extended':
      return `budget extended to stopPoint ${r.data.stopPoint}: ${r.data.totalSteps} steps, ${r.data.checkpoints} checkpoints`;
    case 'snapshot.taken':
      return `weights snapshot at step ${r.data.step}, ${r.data.weightsHash.slice(0, 12)}`;
    case 'process.attached':
      return `process ${r.data.pid} on ${r.data.hostname} attached (${r.data.command}, ${r.data.backend.name})${r.data.backendMismatch ? `: ${r.data.backendMismatch}` : ''}`;
    case 'run.forced':
      return `forced: ${r.data.differences.join('; ')}`;
    default: {
      const exhaustive: never = r;
      return String((exhaustive as { type: string }).type);
    }
  }
}

export interface LightRecord {
  seq: number;
  type: string;
  at: string;
  text: string;
  data: unknown;
}

/** A record without its bulky parts (tensor lists, the model topology, the stored snapshot). */
export function lightRecord(r: LogRecord): LightRecord {
  // As stored: floats in their stored form ("NaN"), since JSON has no NaN. The parts left out of
  // the projections below hold the only other non-finite numbers (a stored snapshot's).
  let data: unknown = encodeRecordData(r);
  if (r.type === 'checkpoint.committed') {
    const { weights, optimizer, machine: _machine, ...rest } = r.data;
    void _machine;
    data = { ...rest, weightTensors: weights.length, optimizerTensors: optimizer.length };
  } else if (r.type === 'snapshot.taken') {
    const { weights, ...rest } = r.data;
    data = { ...rest, weightTensors: weights.length };
  } else if (r.type === 'run.created') {
    const { model, ...rest } = r.data;
    data = { ...rest, model: { spec: model.spec, sourceHash: model.sourceHash, variables: model.variables } };
  }
  return { seq: r.seq, type: r.type, at: r.at, text: describeRecord(r), data };
}

/** The run's creation facts the page shows (config, settings, lineage). */
export function createdInfo(c: RunCreated) {
  return {
    runId: c.runId,
    config: c.config,
    settings: c.settings,
    schedule: c.schedule,
    seed: c.seed,
    backend: c.backend,
    dataset: { name: c.dataset.name, trainSize: c.dataset.trainSize, valSize: c.dataset.valSize, classNames: c.dataset.classNames },
    model: { spec: c.model.spec, variables: c.model.variables },
    optimizer: c.optimizer,
    parent: c.parent,
    origin: c.origin,
    retraceVersion: c.retraceVersion,
  };
}

/** A runs-list row from a run's summary and who holds it: resumable and exportable only when no
 * process holds it, as `retrace resume` and `retrace export` decide (summary.ts, machines/queries.ts). */
export function rowOf(summary: Omit<RunSummaryDoc, 'version'>, writer: RunWriter | null, error: string | null): RunRow {
  const { canResume, canExport, ...rest } = summary;
  return { ...rest, writer, liveness: runLiveness(summary.state, writer !== null), resumable: writer === null && canResume, exportable: writer === null && canExport, error };
}

/** The runs-list row of a run from its history (null history: created, nothing logged yet). */
export function runRow(runId: string, history: RunHistory | null, writer: RunWriter | null, error: string | null): RunRow {
  if (!history) {
    return {
      runId,
      parent: null,
      originStep: 0,
      state: error ? 'unreadable' : 'starting',
      stopReason: null,
      exported: false,
      step: 0,
      totalSteps: null,
      bestMetric: null,
      bestCheckpoint: null,
      monitor: null,
      backend: '',
      dataset: '',
      model: '',
      optimizer: '',
      createdAt: '',
      lastEventAt: '',
      lastSeq: -1,
      writer,
      liveness: runLiveness(null, writer !== null),
      resumable: false,
      exportable: false,
      error,
    };
  }
  const { snapshot } = history.snapshotAt();
  const { version: _version, ...summary } = summarizeRun(
    { created: history.created, createdAt: history.records[0]!.at },
    snapshot,
    history.lastSeq,
    history.records[history.records.length - 1]!.at,
  );
  void _version;
  return rowOf(summary, writer, error);
}

/** Step points a run's first paint carries at most: about one per pixel of a wide chart (the page
 * loads the rest afterwards). */
export const OVERVIEW_STEPS = 1000;

/**
 * A run's series for its first paint, read without loading the log (reader.ts): every
 * evaluation, checkpoint, transition and mark from the log's index, and the steps at most
 * `maxSteps` of them, sampled evenly over the log (the step logged last at or before each sample
 * point). `sampled` says whether steps were left out; the page then asks for the full series.
 */
export async function buildOverview(reader: RunReader, maxSteps = OVERVIEW_STEPS): Promise<RunView & { sampled: boolean }> {
  const view: RunView & { sampled: boolean } = {
    from: 0,
    lastSeq: reader.lastSeq,
    steps: { seq: [], step: [], loss: [], lr: [] },
    evals: [],
    checkpoints: [],
    transitions: [],
    marks: [],
    sampled: false,
  };
  const rare = await reader.rareRecords();
  const steps = await reader.sampleSteps(maxSteps);
  view.sampled = steps.sampled;
  for (const r of steps.records) {
    view.steps.seq.push(r.seq);
    view.steps.step.push(r.data.step);
    view.steps.loss.push(storedFloat(r.data.loss));
    view.steps.lr.push(r.data.lr);
  }
  // The step a transition or mark happened at: the last step sampled at or before it is close
  // enough for a first paint, and exact once the full series arrives.
  const stepAt = (seq: number): number => {
    let lo = 0;
    let hi = view.steps.seq.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (view.steps.seq[mid]! <= seq) {
        found = view.steps.step[mid]!;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
  for (const r of rare) {
    switch (r.type) {
      case 'eval.finished':
        view.evals.push({ seq: r.seq, step: r.data.step, valLoss: storedFloat(r.data.valLoss), valAccuracy: r.data.valAccuracy });
        break;
      case 'checkpoint.committed':
        view.checkpoints.push({ seq: r.seq, index: r.data.index, kind: r.data.kind, step: r.data.step, examplesSeen: r.data.examplesSeen, weightsHash: r.data.weightsHash });
        break;
      case 'state.changed':
        view.transitions.push({ seq: r.seq, from: r.data.from, to: r.data.to, step: stepAt(r.seq), cause: r.data.cause, causeType: r.data.causeType });
        break;
      case 'run.created':
      case 'step.finished':
        break;
      default:
        view.marks.push({ seq: r.seq, type: r.type, step: stepAt(r.seq), text: describeRecord(r) });
    }
  }
  return view;
}
