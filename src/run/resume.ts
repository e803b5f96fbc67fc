// `retrace resume`: continues an interrupted or crashed run from its last committed checkpoint.
// Steps the log already holds after that checkpoint (written before a crash) are re-executed and
// checked against the log, never appended twice; then training goes on where it stopped.
// With a new stopPoint (and/or checkpoint count) it also trains a stopped run longer: the budget
// extension is logged as `run.extended` and the run goes on with the same step numbers and lineage.
import { stateName } from '../../machines/fold.js';
import type { NewRecord } from '../log/events.js';
import type { BackendRequest } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';
import type { Dataset } from '../train/types.js';
import { processAttached, summarize, summarizeHistory, withStore, type RecordListener, type RunSummary, type StoreOption } from './common.js';
import { drive } from './driver.js';
import { Emitter } from './emitter.js';
import { backendMismatch, environmentDifferences, rebuildEnvironment, type Relocation } from './environment.js';
import { loadHistory, restoreMachine, type RunHistory } from './history.js';
import { loadTrainerState } from './snapshots.js';
import { startMachine, type TrainingSnapshot } from '../../machines/fold.js';
import { canExtend, canResume, endsMidRun } from '../../machines/queries.js';
import { rulesOf, scheduleStep } from '../../machines/training.machine.js';
import { scheduleSteps as scheduleBudget, ConfigError } from '../config.js';
import type { RecordData } from '../log/events.js';

import { scheduleView, type ScheduleView } from './schedule.js';

type RunExtendedData = RecordData<'run.extended'>;

export class ResumeRefusedError extends Error {
  override name = 'ResumeRefusedError';
}

export interface ResumeOptions extends StoreOption {
  /** Train longer: the run's new stopPoint (passes over trainingExamples in the whole schedule). */
  stopPoint?: number;
  /** With or without stopPoint: the whole schedule's new checkpoint count (default: the same
   * spacing as before). */
  checkpoints?: number;
  /** Go on although the data, the model source or tfjs differ from the recorded ones (recorded in the log). */
  force?: boolean;
  /** Run on another backend than the recorded one (exactness is then not promised, and said so). */
  backend?: BackendRequest;
  dataset?: Dataset;
  model?: ModelFactory;
  /** Where the run's module or CSV moved (accepted when the fingerprint matches). */
  relocate?: Relocation;
  signal?: AbortSignal;
  onRecord?: RecordListener;
  /** Told, before training goes on, the run's resolved schedule (after any extension). */
  onSchedule?: (schedule: ScheduleView) => void;
  /** Told when the run continues on another backend or with --force. */
  onWarning?: (message: string) => void;
  command?: string;
}

/** The first event after a checkpoint's own batch (its transition records follow it). */
export function eventAfterCheckpoint(history: RunHistory, seq: number): number {
  let next = seq + 1;
  while (history.records[next]?.type === 'state.changed' && (history.records[next]!.data as { cause: number }).cause === seq) next += 1;
  return next;
}

export async function resume(runId: string, opts: ResumeOptions = {}): Promise<RunSummary> {
  return withStore(opts, async (store) => {
    const log = await store.openRun(runId, 'write');
    try {
      const history = await loadHistory(log, runId);
      const final = history.snapshotAt().snapshot;
      const extension = opts.stopPoint !== undefined || opts.checkpoints !== undefined ? planExtension(history, final, opts) : null;
      if (!canResume(final).ok && !extension) {
        opts.onWarning?.(whyNothingToResume(history, final));
        return summarizeHistory(history);
      }

      const created = history.created;
      const env = await rebuildEnvironment(created, opts, 'resume');
      try {
        const differences = environmentDifferences(created, env);
        if (differences.length > 0 && !opts.force) {
          throw new ResumeRefusedError(`refusing to resume run ${runId}: ${differences.join('; ')} (pass --force to resume anyway; it is recorded in the log)`);
        }
        const mismatch = backendMismatch(created.backend, env.backend);
        if (mismatch) opts.onWarning?.(`run ${runId}: ${mismatch}`);
        if (differences.length > 0) opts.onWarning?.(`run ${runId}: resuming with --force: ${differences.join('; ')}`);

        const checkpoint = history.checkpoints[history.checkpoints.length - 1] ?? null;
        const from = checkpoint ? eventAfterCheckpoint(history, checkpoint.seq) : 1;
        if (checkpoint) env.session.restore(await loadTrainerState(store.blobs, checkpoint.data));
        else if (created.start) env.session.restore(await loadTrainerState(store.blobs, created.start));
        else if (created.parent) {
          // A log from before run.created recorded the start: a branch whose checkpoint 0 never
          // committed has no durable trace of its branch point, and a fresh initialisation is not it.
          throw new ResumeRefusedError(
            `run ${runId} is a branch of ${created.parent.runId}@${created.parent.point} that stopped before its starting state was committed; remove it (\`retrace rm ${runId}\`) and branch again`,
          );
        }
        if (mismatch && from <= history.lastSeq && history.records.slice(from).some((r) => r.type === 'step.finished')) {
          throw new ResumeRefusedError(
            `run ${runId} crashed after its last checkpoint and its logged steps can only be re-verified on the recorded backend ${created.backend.name}; resume it there`,
          );
        }
        const emitter = new Emitter({
          runId,
          log,
          expected: history.records.slice(from),
          nextSeq: from,
          snapshot: checkpoint ? restoreMachine(checkpoint.data) : startMachine(created.settings),
          onRecord: opts.onRecord,
          created: { data: created, at: history.records[0]!.at },
        });
        emitter.queueAfterVerification(processAttached(opts.command ?? 'resume', env.backend, checkpoint?.seq ?? null, mismatch));
        if (differences.length > 0) emitter.queueAfterVerification({ type: 'run.forced', data: { differences } } satisfies NewRecord);

        const driveOpts = { runId, created, session: env.session, emitter, blobs: store.blobs, signal: opts.signal };
        // First re-verify what the log already holds, then continue.
        await drive({ ...driveOpts, stopAtEndOfLog: true });
        if (extension && stateName(emitter.snapshot) === 'stopped') {
          const event = { type: 'run.extended' as const, data: extension };
          if (!emitter.snapshot.can(event)) throw new ResumeRefusedError(`run ${runId} cannot be extended in its state (${stateName(emitter.snapshot)}, ${String(emitter.snapshot.context.stopReason)})`);
          await emitter.machine(event, { sync: true });
        }
        opts.onSchedule?.(scheduleView(created, emitter.snapshot.context));
        const snap = emitter.snapshot;
        if (stateName(snap) === 'stopped' && snap.context.stopReason === 'interrupted' && !opts.signal?.aborted) {
          await emitter.machine({ type: 'run.resumed', data: {} }, { sync: false });
        }
        await drive(driveOpts);
        await log.flush();
        return summarize(runId, emitter.snapshot, env.session.weightsHash());
      } finally {
        env.session.dispose();
      }
    } finally {
      await log.close();
    }
  });
}

/** What a budget extension asks for, checked against the run's schedule before anything is done.
 * Throws ConfigError (a value that cannot work) or ResumeRefusedError (a run that cannot be extended). */
export function planExtension(history: RunHistory, final: TrainingSnapshot, opts: { stopPoint?: number; checkpoints?: number }): RunExtendedData {
  const runId = history.runId;
  const created = history.created;
  const ctx = final.context;
  // The machine decides whether it can be extended (machines/queries.ts); here only the advice.
  const can = canExtend(final);
  if (!can.ok || !ctx.plan) {
    const reason = can.ok ? 'has no schedule plan' : can.reason.replace(/^it /, '');
    const advice =
      rulesOf(created.settings) < 2 || !ctx.plan
        ? `; branch from it instead: retrace branch ${runId}@last --stop-point N`
        : endsMidRun(final)
          ? ', then extend its budget'
          : ctx.stopReason === 'diverged'
            ? ': branch from its best checkpoint with a lower learning rate'
            : '';
    throw new ResumeRefusedError(`run ${runId} ${reason}${advice}`);
  }
  const s = created.schedule;
  const at = scheduleStep(created.settings, ctx.step);
  const done = (created.settings.scheduleOffset?.checkpoints ?? 0) + ctx.epochCheckpoints;
  // Without a new stopPoint the schedule keeps its end (only its checkpoint count changes).
  const recorded = currentStopPoint(history);
  const totalSteps = opts.stopPoint !== undefined ? scheduleBudget(s.trainingExamples, opts.stopPoint, s.batchSize) : ctx.plan.toStep;
  const stopPoint =
    opts.stopPoint ?? (scheduleBudget(s.trainingExamples, recorded, s.batchSize) === totalSteps ? recorded : (totalSteps * s.batchSize) / s.trainingExamples);
  if (opts.stopPoint === undefined && totalSteps <= at) {
    throw new ConfigError(`run ${runId} has no budget left (step ${at} of ${totalSteps}); pass --stop-point to train longer`);
  }
  if (totalSteps <= at) {
    const least = Number((((at + 1) * s.batchSize) / s.trainingExamples).toPrecision(6));
    throw new ConfigError(
      `--stop-point ${stopPoint} gives ${totalSteps} steps, but run ${runId} has done ${at} steps of its schedule; pass a stop point of at least ${least}`,
    );
  }
  const checkpoints = opts.checkpoints ?? Math.max(done + 1, Math.round((totalSteps * ctx.plan.toCheckpoint) / ctx.plan.toStep));
  if (checkpoints <= done) {
    throw new ConfigError(`--checkpoints ${checkpoints} must be more than the ${done} checkpoints run ${runId} has made`);
  }
  if (checkpoints - done > totalSteps - at) {
    throw new ConfigError(`--checkpoints ${checkpoints}: ${checkpoints - done} new checkpoints do not fit in the ${totalSteps - at} new steps; use at most ${done + totalSteps - at}`);
  }
  return { stopPoint, checkpoints, totalSteps };
}

/** The run's stopPoint: the last extension's, else its config's. */
function currentStopPoint(history: RunHistory): number {
  for (let i = history.records.length - 1; i >= 0; i -= 1) {
    const r = history.records[i]!;
    if (r.type === 'run.extended') return r.data.stopPoint;
  }
  return history.created.schedule.stopPoint;
}

/** Why `resume` of this run trains nothing, and what would. */
function whyNothingToResume(history: RunHistory, final: TrainingSnapshot): string {
  const runId = history.runId;
  const c = final.context;
  const rules1 = rulesOf(history.created.settings) < 2;
  const longer = rules1 ? `retrace branch ${runId}@last --stop-point N` : `retrace resume ${runId} --stop-point N`;
  if (stateName(final) === 'exported' && c.stopReason === 'interrupted') {
    return `run ${runId} was exported while interrupted, and retrace 0.1.0 (which made it) ended a run at export; nothing to resume: go on with retrace branch ${runId}@last`;
  }
  if (c.stopReason === 'diverged') return `run ${runId} diverged at step ${c.step}; nothing to resume: branch from its best checkpoint (retrace branch ${runId}@best --lr …)`;
  return `run ${runId} finished (${String(c.stopReason)}) at step ${c.step}; nothing to resume. To train longer: ${longer}`;
}
