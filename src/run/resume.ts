// `retrace resume`: continues an interrupted or crashed run from its last committed checkpoint.
// Steps the log already holds after that checkpoint (written before a crash) are re-executed and
// checked against the log, never appended twice; then training goes on where it stopped.
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
import { startMachine } from '../../machines/fold.js';

export class ResumeRefusedError extends Error {
  override name = 'ResumeRefusedError';
}

export interface ResumeOptions extends StoreOption {
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
      const finalState = stateName(final);
      const finished = finalState === 'exported' || (finalState === 'stopped' && final.context.stopReason !== 'interrupted');
      if (finished) return summarizeHistory(history);

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
        });
        emitter.queueAfterVerification(processAttached(opts.command ?? 'resume', env.backend, checkpoint?.seq ?? null, mismatch));
        if (differences.length > 0) emitter.queueAfterVerification({ type: 'run.forced', data: { differences } } satisfies NewRecord);

        const driveOpts = { runId, created, session: env.session, emitter, blobs: store.blobs, signal: opts.signal };
        // First re-verify what the log already holds, then continue.
        await drive({ ...driveOpts, stopAtEndOfLog: true });
        const snap = emitter.snapshot;
        if (stateName(snap) === 'stopped' && snap.context.stopReason === 'interrupted' && !opts.signal?.aborted) {
          await emitter.machine({ type: 'run.resumed' }, { type: 'run.resumed', data: {} }, { sync: false });
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
