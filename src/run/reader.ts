// A run read from its log without loading the log: what `state --at`, `log --from/--to`,
// `checkpoints` and the dashboard's first paint need. run.created is event 0; checkpoints and
// evaluations come from the log's index (EventLog.readIndexed); the machine state after any event
// is the nearest checkpoint's stored snapshot folded forward over the events after it, found by
// reading backwards from the event; a step's event is found by bisecting the log. So the cost of
// an answer grows with the checkpoint interval and the number of checkpoints, never with the
// length of the log. The whole-log checks (every seq, every record's schema, the fold from event
// 0) are fsck's.
import { startMachine, step as machineStep, type TrainingSnapshot } from '../../machines/fold.js';
import { isTrainingEvent } from '../../machines/training.events.js';
import { INDEXED_TYPES, parseRecord, parseRecordOf, type LogRecord, type RunCreated } from '../log/events.js';
import type { EventLog } from '../storage/types.js';
import { restoreMachine, type CheckpointRecord, type PointTimeline } from './history.js';
import { PointError } from './points.js';

/** What a RunReader reads through: an open EventLog, or a history already in memory (RunHistory.asLog). */
export type ReadableLog = Pick<EventLog, 'get' | 'getMany' | 'lastSeq' | 'read' | 'readBackward' | 'readIndexed'>;

type EvalRecord = Extract<LogRecord, { type: 'eval.finished' }>;
type StepRecord = Extract<LogRecord, { type: 'step.finished' }>;

export interface StateAfter {
  snapshot: TrainingSnapshot;
  /** The checkpoint the fold started from (null before checkpoint 0). */
  checkpoint: CheckpointRecord | null;
  /** The loss of the last step at or before the event (null before the first step). */
  lastLoss: number | null;
}

export class RunReader implements PointTimeline {
  private checkpointList: CheckpointRecord[] | null = null;
  private readonly states = new Map<number, StateAfter>();

  private constructor(
    readonly runId: string,
    private readonly log: ReadableLog,
    readonly created: RunCreated,
    /** When run.created was appended. */
    readonly createdAt: string,
    readonly lastSeq: number,
    /** When the last event was appended. */
    readonly lastAt: string,
  ) {}

  /**
   * Reads run.created and the end of the log. Throws PointError for a run without events or whose
   * event 0 is not run.created, CorruptLogError / SchemaError for a damaged record.
   */
  static async open(log: ReadableLog, runId: string): Promise<RunReader> {
    const lastSeq = await log.lastSeq();
    if (lastSeq < 0) {
      throw new PointError(`run ${runId} has no events: it was stopped before it recorded its creation; start it again with \`retrace train --run-id ${runId}\``);
    }
    const first = parseRecord(runId, (await log.get(0))!); // lastSeq ≥ 0: event 0 is there
    if (first.type !== 'run.created') throw new PointError(`run ${runId} has no run.created event: the log is damaged (run \`retrace fsck ${runId}\`)`);
    const last = lastSeq === 0 ? first : parseRecord(runId, (await log.get(lastSeq))!);
    return new RunReader(runId, log, first.data, first.at, lastSeq, last.at);
  }

  /** Every checkpoint in seq order (from the index; read once). */
  async checkpoints(): Promise<CheckpointRecord[]> {
    if (!this.checkpointList) {
      const out: CheckpointRecord[] = [];
      for await (const raw of this.log.readIndexed('checkpoint.committed')) out.push(parseRecordOf(this.runId, raw, 'checkpoint.committed'));
      this.checkpointList = out;
    }
    return this.checkpointList;
  }

  /** Evaluations at or before `seq`, in order (from the index). */
  async evaluations(seq = this.lastSeq): Promise<EvalRecord[]> {
    const out: EvalRecord[] = [];
    for await (const raw of this.log.readIndexed('eval.finished', { to: seq })) out.push(parseRecordOf(this.runId, raw, 'eval.finished'));
    return out;
  }

  /** Records from..to (inclusive), validated. */
  async range(from: number, to: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    for await (const raw of this.log.read({ from: Math.max(0, from), to: Math.min(to, this.lastSeq) })) out.push(parseRecord(this.runId, raw));
    return out;
  }

  /**
   * The machine state after event `seq`: the nearest checkpoint at or before it (reading
   * backwards from the event), its stored snapshot, and the events after it folded forward.
   */
  async stateAfter(seq = this.lastSeq): Promise<StateAfter> {
    const cached = this.states.get(seq);
    if (cached) return cached;
    const tail: LogRecord[] = [];
    let checkpoint: CheckpointRecord | null = null;
    let lastLoss: number | null = null;
    for await (const raw of this.log.readBackward({ from: seq })) {
      const r = parseRecord(this.runId, raw);
      if (r.type === 'checkpoint.committed') {
        checkpoint = r;
        break;
      }
      if (r.type === 'step.finished' && lastLoss === null) lastLoss = r.data.loss;
      tail.push(r);
    }
    let snapshot = checkpoint ? restoreMachine(checkpoint.data) : startMachine(this.created.settings);
    for (let i = tail.length - 1; i >= 0; i -= 1) {
      const event = tail[i]!;
      if (isTrainingEvent(event)) snapshot = machineStep(snapshot, event).snapshot;
    }
    // A step at or before the checkpoint: the loss logged last before it.
    if (lastLoss === null && checkpoint && checkpoint.data.step > 0) {
      for await (const raw of this.log.readBackward({ from: checkpoint.seq - 1 })) {
        const r = parseRecord(this.runId, raw);
        if (r.type === 'step.finished') {
          lastLoss = r.data.loss;
          break;
        }
      }
    }
    const out = { snapshot, checkpoint, lastLoss };
    this.states.set(seq, out);
    return out;
  }

  /**
   * Every record of the indexed types (all but the per-step one: evaluations, checkpoints,
   * transitions, stops, resumes, exports, ...) in seq order, read through the index.
   */
  async rareRecords(): Promise<LogRecord[]> {
    const all: LogRecord[] = [];
    for (const type of INDEXED_TYPES) for await (const raw of this.log.readIndexed(type)) all.push(parseRecord(this.runId, raw));
    return all.sort((a, b) => a.seq - b.seq);
  }

  /**
   * At most `n` step records spread evenly over the log (for a chart's first paint): all of them
   * when the log is short, else the events at `n` evenly spaced seqs that are steps. `sampled` is
   * true when steps were left out.
   */
  async sampleSteps(n: number): Promise<{ records: StepRecord[]; sampled: boolean }> {
    const records: StepRecord[] = [];
    if (this.lastSeq + 1 <= 2 * n) {
      for await (const raw of this.log.read()) {
        if (raw.type === 'step.finished') records.push(parseRecordOf(this.runId, raw, 'step.finished'));
      }
      return { records, sampled: false };
    }
    // The samples in one read (getMany): an event that is not a step
    // (a checkpoint, an evaluation, a transition: a few in a thousand) is simply not drawn.
    const at = Array.from({ length: n }, (_, i) => Math.floor(((i + 1) * this.lastSeq) / n));
    for (const raw of await this.log.getMany(at)) {
      if (raw?.type === 'step.finished') records.push(parseRecordOf(this.runId, raw, 'step.finished'));
    }
    return { records, sampled: true };
  }

  async foldTo(seq = this.lastSeq): Promise<{ snapshot: TrainingSnapshot; checkpoint: CheckpointRecord | null }> {
    const { snapshot, checkpoint } = await this.stateAfter(seq);
    return { snapshot, checkpoint };
  }

  async listCheckpoints(): Promise<CheckpointRecord[]> {
    return this.checkpoints();
  }

  /**
   * The seq of the event after which the run had done exactly `step` steps (`step:0` is
   * checkpoint 0), by bisecting the log: a run's steps grow with its seqs. Null when it has no
   * such step.
   */
  async stepSeq(step: number): Promise<number | null> {
    if (step === 0) return (await this.checkpoints()).find((c) => c.data.kind !== 'interrupt' && c.data.index === 0)?.seq ?? null;
    // The step done after event m, found by reading back to the nearest step.finished (steps are
    // logged consecutively, so that is at most a checkpoint's handful of events away).
    const stepAtOrBefore = async (m: number): Promise<{ step: number; seq: number } | null> => {
      for await (const raw of this.log.readBackward({ from: m })) {
        const r = parseRecord(this.runId, raw);
        if (r.type === 'step.finished') return { step: r.data.step, seq: r.seq };
      }
      return null;
    };
    let lo = 0;
    let hi = this.lastSeq;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      const found = await stepAtOrBefore(mid);
      if (found === null || found.step <= step) lo = mid;
      else hi = mid - 1;
    }
    const found = await stepAtOrBefore(lo);
    return found && found.step === step ? found.seq : null;
  }
}
