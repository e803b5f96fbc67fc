// A run's log, projected into TensorBoard events. Pure and deterministic: the same records give the
// same events (wall times come from the records' `at`, never from the clock), so an export of a
// finished run is byte-for-byte reproducible, and `--follow` and `train --tensorboard` feed the
// same projection record by record.
//
// Steps: TensorBoard's step is the run's step plus its origin, so a branch continues its parent's
// curve (its step 0 is its parent's step at the branch point).
//
// Resumes: a resumed process re-executes the steps after its checkpoint. TensorBoard's rule for a
// restarted writer is a SessionLog START at step S: every point it read before with a step >= S is
// dropped (orphaned), and what follows replaces it. At each resume the projection writes START at
// the first step the resumed process computes (checkpoint step + 1) and then the re-executed steps
// again, exactly what a `--tensorboard` writer in the resumed process writes, so an export and the
// live files show the same curves and nothing committed before the checkpoint is dropped.
import type { LogRecord, RunCreated } from '../log/events.js';
import type { HParamValues, TbEvent } from './proto.js';
import { scalarsOf } from './tags.js';

/** Seconds since the epoch of a record's ISO `at`. */
export function wallTimeOf(at: string): number {
  return Date.parse(at) / 1000;
}

/**
 * The run's config as TensorBoard hyperparameters (the HParams view compares runs by them).
 * Numbers, strings and booleans as they are; lists as comma-separated strings; unset (null) values
 * are left out; anything else as JSON text. `parent` names a branch's origin (`RUN@POINT`).
 */
export function hparamsOf(created: RunCreated): HParamValues {
  const out: HParamValues = {};
  for (const [key, value] of Object.entries(created.config)) {
    if (value === null || value === undefined) continue;
    if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') out[key] = value;
    else if (Array.isArray(value) && value.every((v) => typeof v !== 'object')) out[key] = value.join(',');
    else out[key] = JSON.stringify(value);
  }
  if (created.parent) out.parent = `${created.parent.runId}@${created.parent.point}`;
  return out;
}

export class RunProjection {
  created: RunCreated | null = null;
  /** The wall time (s) of run.created, for the event file's name. */
  createdAt: number | null = null;
  /** The creating process (the first process.attached), for the event file's name. */
  creator: { hostname: string; pid: number } | null = null;
  /** Processes that attached to the run so far (1 = only the creator). */
  processes = 0;
  lastSeq = -1;
  private lastCheckpointStep: number | null = null;
  /** Scalar events since the last checkpoint: what a resume re-executes. */
  private sinceCheckpoint: TbEvent[] = [];
  /** Set when this projection's output continues in a resumed process that already wrote its START. */
  private skipResumeAttach = false;

  get origin(): number {
    return this.created?.origin.step ?? 0;
  }

  /** The TensorBoard events a record adds (most records add none). Records must come in seq order. */
  take(record: LogRecord): TbEvent[] {
    this.lastSeq = record.seq;
    const wallTime = wallTimeOf(record.at);
    switch (record.type) {
      case 'run.created':
        this.created = record.data;
        this.createdAt = wallTime;
        return this.header(wallTime);
      case 'process.attached': {
        this.processes += 1;
        if (this.processes === 1) {
          this.creator = { hostname: record.data.hostname, pid: record.data.pid };
          return [];
        }
        if (this.skipResumeAttach) {
          this.skipResumeAttach = false;
          return [];
        }
        return [{ kind: 'sessionStart', wallTime, step: this.resumeStep() }, ...this.sinceCheckpoint];
      }
      case 'checkpoint.committed':
        this.lastCheckpointStep = record.data.step;
        this.sinceCheckpoint = [];
        return [];
      default: {
        const s = scalarsOf(record);
        if (!s) return [];
        const event: TbEvent = { kind: 'scalars', wallTime, step: this.origin + s.step, scalars: s.scalars };
        this.sinceCheckpoint.push(event);
        return [event];
      }
    }
  }

  /**
   * For a writer in a resuming process: the records read before it starts (everything up to its
   * checkpoint's batch) are taken silently, and its file starts with a header and a START at the
   * resume step. The resume's own process.attached, when it arrives, then adds nothing more.
   */
  beginResume(records: LogRecord[], wallTime: number): TbEvent[] {
    for (const r of records) this.take(r);
    this.skipResumeAttach = true;
    this.sinceCheckpoint = [];
    return [...this.header(wallTime), { kind: 'sessionStart', wallTime, step: this.resumeStep() }];
  }

  /** The first step a resumed process computes: its checkpoint's step + 1 (on TensorBoard's axis). */
  private resumeStep(): number {
    return this.origin + (this.lastCheckpointStep ?? 0) + 1;
  }

  /** Every event file starts with its version; then the run's hyperparameters. */
  private header(wallTime: number): TbEvent[] {
    const created = this.created;
    const events: TbEvent[] = [{ kind: 'fileVersion', wallTime, step: 0 }];
    if (created) events.push({ kind: 'hparams', wallTime, step: 0, hparams: hparamsOf(created), startTimeSecs: this.createdAt ?? wallTime });
    return events;
  }
}
