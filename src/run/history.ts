// Reading a run's past without tfjs: its validated records, its checkpoints, the machine state
// at any event (folded from the nearest checkpoint's stored snapshot), and named points.
import { fromPlain, startMachine, step as machineStep, stateName, type TrainingSnapshot } from '../../machines/fold.js';
import { isTrainingEvent } from '../../machines/training.events.js';
import { parseRecord, type CheckpointData, type LogRecord, type RunCreated } from '../log/events.js';
import type { EventLog } from '../storage/types.js';
import type { ReadableLog } from './reader.js';
import { checkpointName, PointError, resolvePoint, type Point } from './points.js';

export { PointError } from './points.js';

export type CheckpointRecord = Extract<LogRecord, { type: 'checkpoint.committed' }>;

/**
 * What resolving a point asks of a run (points.ts), answered by a whole history in memory
 * (RunHistory) or by a run read from its log on demand (RunReader).
 */
export interface PointTimeline {
  readonly runId: string;
  readonly lastSeq: number;
  /** The machine state after event `seq` (default: the last) and the checkpoint it folded from. */
  foldTo(seq?: number): Promise<{ snapshot: TrainingSnapshot; checkpoint: CheckpointRecord | null }>;
  /** Every checkpoint, in seq order. */
  listCheckpoints(): Promise<CheckpointRecord[]>;
  /** The seq of the event after which the run had done exactly `step` steps, or null. */
  stepSeq(step: number): Promise<number | null>;
}

export class RunHistory implements PointTimeline {
  readonly checkpoints: CheckpointRecord[];

  constructor(
    readonly runId: string,
    readonly records: LogRecord[],
  ) {
    const first = records[0];
    if (!first) {
      throw new PointError(`run ${runId} has no events: it was stopped before it recorded its creation; start it again with \`retrace train --run-id ${runId}\``);
    }
    if (first.type !== 'run.created') {
      throw new PointError(`run ${runId} has no run.created event: the log is damaged (run \`retrace fsck ${runId}\`)`);
    }
    this.checkpoints = records.filter((r): r is CheckpointRecord => r.type === 'checkpoint.committed');
  }

  get created(): RunCreated {
    return (this.records[0] as Extract<LogRecord, { type: 'run.created' }>).data;
  }

  get lastSeq(): number {
    return this.records.length - 1;
  }

  /** The machine snapshot after event `seq` (default: the whole log). Uses the nearest
   * checkpoint's stored snapshot, so the cost does not grow with the run's length. */
  snapshotAt(seq = this.lastSeq): { snapshot: TrainingSnapshot; checkpoint: CheckpointRecord | null; unaccepted: number[] } {
    const checkpoint = this.checkpointAtOrBefore(seq);
    let snapshot = checkpoint ? restoreMachine(checkpoint.data) : startMachine(this.created.settings);
    const unaccepted: number[] = [];
    for (let i = (checkpoint?.seq ?? 0) + 1; i <= seq && i < this.records.length; i += 1) {
      const event = this.records[i]!;
      if (!isTrainingEvent(event)) continue;
      const r = machineStep(snapshot, event);
      if (!r.accepted) unaccepted.push(i);
      snapshot = r.snapshot;
    }
    return { snapshot, checkpoint, unaccepted };
  }

  /** Folds the whole log from event 0 through the machine (no stored snapshots): fsck and tests
   * use it to check that the stored snapshots and transitions agree with the machine. */
  foldFromStart(onEvent?: (record: LogRecord, before: TrainingSnapshot, after: TrainingSnapshot, accepted: boolean) => void): TrainingSnapshot {
    let snapshot = startMachine(this.created.settings);
    for (const record of this.records) {
      if (!isTrainingEvent(record)) continue;
      const r = machineStep(snapshot, record);
      onEvent?.(record, snapshot, r.snapshot, r.accepted);
      snapshot = r.snapshot;
    }
    return snapshot;
  }

  async foldTo(seq = this.lastSeq): Promise<{ snapshot: TrainingSnapshot; checkpoint: CheckpointRecord | null }> {
    const { snapshot, checkpoint } = this.snapshotAt(seq);
    return { snapshot, checkpoint };
  }

  async listCheckpoints(): Promise<CheckpointRecord[]> {
    return this.checkpoints;
  }

  async stepSeq(step: number): Promise<number | null> {
    return this.seqOfStep(step);
  }

  /** The history as a log to read (for RunReader): the records it holds, already validated. */
  asLog(): ReadableLog {
    const records = this.records;
    const clamp = (range: { from?: number; to?: number } = {}) => ({ from: Math.max(0, range.from ?? 0), to: Math.min(range.to ?? Infinity, records.length - 1) });
    return {
      get: async (seq) => records[seq],
      getMany: async (seqs) => seqs.map((seq) => records[seq]),
      lastSeq: async () => records.length - 1,
      read: async function* (range) {
        const { from, to } = clamp(range);
        for (let i = from; i <= to; i += 1) yield records[i]!;
      },
      readBackward: async function* (range = {}) {
        const from = Math.min(range.from ?? Infinity, records.length - 1);
        for (let i = from; i >= Math.max(0, range.to ?? 0); i -= 1) yield records[i]!;
      },
      readIndexed: async function* (type, range) {
        const { from, to } = clamp(range);
        for (let i = from; i <= to; i += 1) if (records[i]!.type === type) yield records[i]!;
      },
    };
  }

  checkpointAtOrBefore(seq: number): CheckpointRecord | null {
    let found: CheckpointRecord | null = null;
    for (const c of this.checkpoints) {
      if (c.seq <= seq) found = c;
      else break;
    }
    return found;
  }

  /** The checkpoint with training index K (0 = the start); interrupt checkpoints have no index of their own. */
  checkpointByIndex(index: number): CheckpointRecord | null {
    return this.checkpoints.find((c) => c.data.kind !== 'interrupt' && c.data.index === index) ?? null;
  }

  /** The run's interrupt checkpoints in order: `int:N` is the N-th (1-based). */
  interruptCheckpoints(): CheckpointRecord[] {
    return this.checkpoints.filter((c) => c.data.kind === 'interrupt');
  }

  /** A checkpoint's name as a point: `ckpt:K` for the start and epoch checkpoints, `int:N` for the
   * N-th interrupt checkpoint (which evaluates nothing and has no training index of its own). */
  checkpointName(checkpoint: CheckpointRecord): string {
    return checkpointName(this.checkpoints, checkpoint);
  }

  /** Seq of the event after which the run had done exactly `step` steps. */
  seqOfStep(step: number): number | null {
    if (step === 0) return this.checkpointByIndex(0)?.seq ?? null;
    for (const r of this.records) if (r.type === 'step.finished' && r.data.step === step) return r.seq;
    return null;
  }

  /**
   * Resolves a point (see points.ts) to a state to start from: the event and step it names and the
   * checkpoint at or before it. Throws PointError when the run has no such point, or no
   * checkpoint before it.
   */
  async resolvePoint(point: Point | string, what?: string): Promise<{ seq: number; step: number; checkpoint: CheckpointRecord; exact: boolean }> {
    const r = await resolvePoint(this, point, what);
    if (!r.checkpoint) throw new PointError(`run ${this.runId} has no checkpoint at or before event ${r.seq}`);
    return { seq: r.seq, step: r.step, checkpoint: r.checkpoint, exact: r.exact };
  }
}

export function restoreMachine(data: CheckpointData): TrainingSnapshot {
  return fromPlain(data.machine);
}

/** Reads and validates every record of a run. */
export async function readHistory(log: Pick<EventLog, 'read'>, runId: string, range: { from?: number; to?: number } = {}): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const raw of log.read(range)) out.push(parseRecord(runId, raw));
  return out;
}

export async function loadHistory(log: Pick<EventLog, 'read'>, runId: string): Promise<RunHistory> {
  return new RunHistory(runId, await readHistory(log, runId));
}

export function describeState(snapshot: TrainingSnapshot): string {
  return stateName(snapshot);
}
