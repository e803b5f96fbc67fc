// What a run is, in one line of a list: the one definition behind `runs`, `state`'s liveness, the
// dashboard's run rows and the summary a writer stores beside each committed mark.
//
// A writer (the Emitter) computes it after every event it appends and hands it to its EventLog,
// which stores it with the committed mark (atomically, so it always describes exactly the mark's
// event); `runs` and the dashboard's list then read one small record per run instead of opening
// every log. Readers validate it (it comes from disk) and fall back to reading the log when it is
// missing, from another version, or may be behind the log (see `summaryIsCurrent`).
import { z } from 'zod';
import { stateName, type TrainingSnapshot } from '../../machines/fold.js';
import { canExport, canResume } from '../../machines/queries.js';
import { TRAINING_STATE_NAMES } from '../../machines/training.context.js';
import { StopReasonSchema } from '../../machines/training.events.js';
import { budgetSteps } from '../../machines/training.machine.js';
import type { RunCreated } from '../log/events.js';

export const RUN_SUMMARY_VERSION = 1;


export const RunSummarySchema = z.object({
  version: z.literal(RUN_SUMMARY_VERSION),
  runId: z.string(),
  /** The parent run and the point it branched at (null: not a branch). */
  parent: z.object({ runId: z.string(), point: z.string(), step: z.number().int().nonnegative(), seq: z.number().int().nonnegative() }).nullable(),
  /** Absolute step of this run's step 0 (a branch continues its parent's axis). */
  originStep: z.number().int().nonnegative(),
  state: z.enum(TRAINING_STATE_NAMES),
  stopReason: StopReasonSchema.nullable(),
  /** Whether a checkpoint was exported (the run stays stopped, and resumable if interrupted). */
  exported: z.boolean(),
  step: z.number().int().nonnegative(),
  examplesSeen: z.number().int().nonnegative(),
  /** The step budget of the plan being followed. */
  totalSteps: z.number().int().nonnegative(),
  monitor: z.enum(['valLoss', 'valAccuracy']),
  bestCheckpoint: z.number().int().nonnegative().nullable(),
  /** The best checkpoint's monitored metric with its real sign (an accuracy is positive; the
   * machine orders it negated so that smaller is better), null when none is finite yet. */
  bestMetric: z.number().nullable(),
  bestWeightsHash: z.string().nullable(),
  /** What the machine says the run can do now, whoever holds it (machines/queries.ts); a reader
   * adds "and no process holds it". */
  canResume: z.boolean(),
  canExport: z.boolean(),
  backend: z.string(),
  dataset: z.string(),
  model: z.string(),
  optimizer: z.string(),
  createdAt: z.string(),
  lastEventAt: z.string(),
  /** The event this summary describes (the last one it saw). */
  lastSeq: z.number().int().nonnegative(),
});
export type RunSummaryDoc = z.infer<typeof RunSummarySchema>;

/**
 * A monitored metric with its real sign. The machine orders every metric so that smaller is
 * better (an accuracy is kept negated, machines/training.machine.ts monitoredValue); people and
 * JSON readers get the value itself. Null for a metric that is not finite (no best yet).
 */
export function realMetric(monitor: 'valLoss' | 'valAccuracy', ordered: number | null | undefined): number | null {
  if (ordered === null || ordered === undefined || !Number.isFinite(ordered)) return null;
  return monitor === 'valAccuracy' ? -ordered : ordered;
}

/** The facts of run.created a summary carries (from the record and its `at`). */
export interface SummaryBase {
  created: RunCreated;
  createdAt: string;
}

/** The summary of a run after event `lastSeq` (appended at `lastEventAt`), the machine in `snapshot`. */
export function summarizeRun(base: SummaryBase, snapshot: TrainingSnapshot, lastSeq: number, lastEventAt: string): RunSummaryDoc {
  const { created } = base;
  const c = snapshot.context;
  const p = created.parent;
  return {
    version: RUN_SUMMARY_VERSION,
    runId: created.runId,
    parent: p ? { runId: p.runId, point: p.point, step: p.step, seq: p.seq } : null,
    originStep: created.origin.step,
    state: stateName(snapshot),
    stopReason: c.stopReason,
    exported: c.exported !== null,
    step: c.step,
    examplesSeen: c.examplesSeen,
    totalSteps: budgetSteps(c),
    monitor: created.settings.monitor,
    bestCheckpoint: c.best ? c.best.index : null,
    bestMetric: realMetric(created.settings.monitor, c.best?.metric),
    bestWeightsHash: c.best?.weightsHash ?? null,
    canResume: canResume(snapshot).ok,
    canExport: canExport(snapshot).ok,
    backend: created.backend.name,
    dataset: created.dataset.name,
    model: created.model.spec,
    optimizer: created.optimizer,
    createdAt: base.createdAt,
    lastEventAt,
    lastSeq,
  };
}

/** A stored summary, validated: null when it is missing or not one this retrace reads. */
export function parseSummary(stored: { seq: number; summary: unknown } | null): RunSummaryDoc | null {
  if (!stored) return null;
  const parsed = RunSummarySchema.safeParse(stored.summary);
  return parsed.success && parsed.data.lastSeq === stored.seq ? parsed.data : null;
}

/**
 * Whether a stored summary is the run as it is now: the mark it was stored with is the run's last
 * commit, so it is current unless a writer appended past the mark without committing. That only
 * happens to a run that is being written (`held`) or whose writer died mid-training (its summary
 * then shows an active state, as the log's own end would): both are read from the log instead.
 */
export function summaryIsCurrent(summary: RunSummaryDoc, held: boolean): boolean {
  return !held && (summary.state === 'stopped' || summary.state === 'exported');
}
