// Reading a run's past without tfjs: its validated records, its checkpoints, the machine state
// at any event (folded from the nearest checkpoint's stored snapshot), and named points.
import { fromPlain, startMachine, step as machineStep, stateName, type TrainingSnapshot } from '../../machines/fold.js';
import { isTrainingEvent } from '../../machines/training.events.js';
import { parseRecord, type CheckpointData, type LogRecord, type RunCreated } from '../log/events.js';
import type { RunLog } from '../log/run-log.js';
import { PointError, resolvePoint, type Point } from './points.js';

export { PointError } from './points.js';

export type CheckpointRecord = Extract<LogRecord, { type: 'checkpoint.committed' }>;

export class RunHistory {
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
    if (checkpoint.data.kind !== 'interrupt') return `ckpt:${checkpoint.data.index}`;
    return `int:${this.interruptCheckpoints().findIndex((c) => c.seq === checkpoint.seq) + 1}`;
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
  resolvePoint(point: Point | string, what?: string): { seq: number; step: number; checkpoint: CheckpointRecord; exact: boolean } {
    const r = resolvePoint(this, point, what);
    if (!r.checkpoint) throw new PointError(`run ${this.runId} has no checkpoint at or before event ${r.seq}`);
    return { seq: r.seq, step: r.step, checkpoint: r.checkpoint, exact: r.exact };
  }
}

export function restoreMachine(data: CheckpointData): TrainingSnapshot {
  return fromPlain(data.machine);
}

/** Reads and validates every record of a run. */
export async function readHistory(log: RunLog, runId: string, range: { from?: number; to?: number } = {}): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const raw of log.read(range)) out.push(parseRecord(runId, raw));
  return out;
}

export async function loadHistory(log: RunLog, runId: string): Promise<RunHistory> {
  return new RunHistory(runId, await readHistory(log, runId));
}

export function describeState(snapshot: TrainingSnapshot): string {
  return stateName(snapshot);
}
