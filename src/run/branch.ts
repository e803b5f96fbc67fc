// `retrace branch RUN@POINT`: a new run that starts from the exact state of another run at any
// point (a checkpoint, or any step, reached by exact re-execution from the checkpoint before it),
// with overrides (fresh data, another learning rate, frozen layers...). It inherits the parent's
// controller state and, without a budget override, its schedule (see inherit.ts). The parent's
// history is referenced (its blobs are shared by hash), never copied.
import { resolveConfig, type ConfigInput } from '../config.js';
import { RunExistsError } from '../log/errors.js';
import type { Dataset, TrainerState } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';
import { newRunId, withStore, type RecordListener, type RunSummary, type StoreOption } from './common.js';
import { buildEnvironment, EnvironmentError, inheritableConfig, inheritedDifferences, parentRelocation, requireCallerParts } from './environment.js';
import { loadHistory, PointError } from './history.js';
import { replayFrom } from './replay.js';
import { loadTrainerState } from './snapshots.js';
import { callerParts, startRun } from './train.js';
import { planBranch } from './inherit.js';
import { stateName } from '../../machines/fold.js';
import { canBranchAt } from '../../machines/queries.js';

export interface BranchOptions extends StoreOption {
  /** Overrides of the parent's config (the same keys as train, plus `freeze`). */
  overrides?: ConfigInput;
  /** The branch's data (e.g. fresh data to fine-tune on), when it is the caller's own. */
  dataset?: Dataset;
  /** The parent's data, when it was the caller's own and differs from `dataset`: a branch from a
   * step between checkpoints re-executes the parent to reach it. */
  parentDataset?: Dataset;
  model?: ModelFactory;
  signal?: AbortSignal;
  onRecord?: RecordListener;
  onWarning?: (message: string) => void;
  command?: string;
}

/** Splits `RUN@POINT`. The point is required: a silent default would branch from a state the
 * caller never named. Throws PointError ("bad …", a usage error) without it. */
export function parseBranchTarget(target: string): { runId: string; point: string } {
  const at = target.lastIndexOf('@');
  if (at <= 0) {
    throw new PointError(
      `bad branch target "${target}": name the point to branch from, e.g. ${target}@last or ${target}@best (best, last, ckpt:K, int:N, step:N or an event number)`,
    );
  }
  const point = target.slice(at + 1);
  if (!point) throw new PointError(`bad branch target "${target}": expected RUN@POINT (best, last, ckpt:K, int:N, step:N or an event number)`);
  return { runId: target.slice(0, at), point };
}

export async function branch(target: string, opts: BranchOptions = {}): Promise<RunSummary> {
  const { runId: parentId, point } = parseBranchTarget(target);
  return withStore(opts, async (store) => {
    const parentLog = await store.openRun(parentId, 'read');
    const history = await (async () => {
      try {
        return await loadHistory(parentLog, parentId);
      } finally {
        await parentLog.close();
      }
    })();
    let resolved = await history.resolvePoint(point);
    // A step that ended a virtual epoch: the parent's checkpoint there (with its decisions) is the
    // state the parent went on from.
    const atBoundary = history.checkpoints.find((c) => c.seq > resolved.seq && c.data.kind === 'epoch' && c.data.step === resolved.step);
    if (!resolved.exact && atBoundary && stateName(history.snapshotAt(resolved.seq).snapshot) === 'checkpointing') {
      resolved = { seq: atBoundary.seq, step: atBoundary.data.step, checkpoint: atBoundary, exact: true };
    }
    const atPoint = history.snapshotAt(resolved.seq).snapshot;
    const branchable = canBranchAt(atPoint);
    if (!branchable.ok) throw new PointError(`cannot branch from ${target}: ${branchable.reason}`);
    const branchPlan = planBranch(history.created, atPoint.context, opts.overrides ?? {}, point);
    const config = resolveConfig(inheritableConfig(history.created), opts.overrides as Record<string, unknown> | undefined);
    const runId = config.runId ?? newRunId();
    if ((await store.hasRun(runId)) && !(await store.isEmptyRun(runId))) throw new RunExistsError(runId, await store.liveWriter(runId));

    // The exact state at the point: a checkpoint's blobs, or re-execution up to the step.
    let state: TrainerState;
    let examplesSeen: number;
    if (resolved.exact) {
      state = await loadTrainerState(store.blobs, resolved.checkpoint.data);
      examplesSeen = resolved.checkpoint.data.examplesSeen;
    } else {
      let captured: TrainerState | null = null;
      const result = await replayFrom(store, history, resolved.checkpoint, {
        stopAtStep: resolved.step,
        cwd: opts.cwd,
        dataset: opts.parentDataset ?? opts.dataset,
        model: opts.model,
        relocate: parentRelocation(history.created, opts.overrides as Record<string, unknown> | undefined, opts.cwd),
        onWarning: opts.onWarning,
        onFinish: async (env) => {
          captured = env.session.capture();
        },
      });
      if (!result.identical || !captured) {
        throw new PointError(`cannot branch from ${target}: re-executing the parent diverged from its log (${result.message})`);
      }
      state = captured;
      examplesSeen = history.snapshotAt(resolved.seq).snapshot.context.examplesSeen;
    }

    const env = await buildEnvironment({
      config,
      backend: opts.overrides?.backend ?? history.created.backend.name,
      cwd: opts.cwd,
      dataset: opts.dataset,
      modelFactory: opts.model,
    onWarning: opts.onWarning,
    });
    try {
      const changed = inheritedDifferences(history.created, env, opts.overrides as Record<string, unknown> | undefined);
      if (changed.length > 0) throw new EnvironmentError(`cannot branch from run ${parentId}: ${changed.join('; ')}; restore it, or override it (e.g. --dataset, --model)`);
      const sameOptimizer = config.optimizer === history.created.optimizer;
      if (!sameOptimizer) {
        opts.onWarning?.(`branch uses optimizer ${config.optimizer} instead of ${history.created.optimizer}: its optimizer state starts fresh`);
      }
      const initialState: TrainerState = { weights: state.weights, optimizer: sameOptimizer ? state.optimizer : [] };
      return await startRun(store, {
        runId,
        config,
        env,
        parent: { runId: parentId, point, seq: resolved.seq, step: resolved.step },
        origin: {
          step: history.created.origin.step + resolved.step,
          examplesSeen: history.created.origin.examplesSeen + examplesSeen,
        },
        initialState,
        branchPlan,
        signal: opts.signal,
        onRecord: opts.onRecord,
        command: opts.command ?? 'branch',
        caller: callerParts(opts),
        cwd: opts.cwd,
      });
    } finally {
      env.session.dispose();
    }
  });
}
