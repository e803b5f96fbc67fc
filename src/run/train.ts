// `retrace train`: a new run from a config. Everything that can fail on user input (config, data,
// model, backend) is checked before the run id is claimed, so a bad config leaves no empty run.
import { startMachine } from '../../machines/fold.js';
import { CURRENT_RULES } from '../../machines/training.machine.js';
import { computeSchedule, resolveConfig, type Config, type ConfigInput } from '../config.js';
import { RunExistsError } from '../log/errors.js';
import { SCHEMA_VERSION, type Parent, type RunCreated } from '../log/events.js';
import type { Dataset } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';
import { processAttached, summarize, withStore, newRunId, type RecordListener, type RunSummary, type StoreOption } from './common.js';
import { drive } from './driver.js';
import { Emitter } from './emitter.js';
import { buildEnvironment, CALLER_PREFIX, recordedConfig, recordedFiles, RETRACE_VERSION, settingsFrom, type RunEnvironment } from './environment.js';
import type { TrainerState } from '../train/types.js';
import { canonicalVariables } from '../train/weights.js';
import { persistTrainerState } from './snapshots.js';
import type { RunStore } from '../storage/types.js';
import type { BranchPlan } from './inherit.js';
import { checkRecordable } from './recordable.js';

export interface TrainOptions extends StoreOption {
  /** Config values (a file's contents merged with flags by the caller); defaults fill the rest. */
  config?: ConfigInput;
  /** Library callers: their own data (instead of `config.dataset`). */
  dataset?: Dataset;
  /** Library callers: their own model factory (instead of `config.model`). */
  model?: ModelFactory;
  signal?: AbortSignal;
  onRecord?: RecordListener;
  onWarning?: (message: string) => void;
  /** The command line that started it, for the log's process record. */
  command?: string;
}

export async function train(opts: TrainOptions = {}): Promise<RunSummary> {
  const config = resolveConfig(opts.config as Record<string, unknown> | undefined);
  return withStore({ ...opts, create: true }, async (store) => {
    const runId = config.runId ?? newRunId();
    if ((await store.hasRun(runId)) && !(await store.isEmptyRun(runId))) throw new RunExistsError(runId, await store.liveWriter(runId));
    const env = await buildEnvironment({
      config,
      backend: config.backend,
      cwd: opts.cwd,
      dataset: opts.dataset,
      modelFactory: opts.model,
      onWarning: opts.onWarning,
    });
    try {
      return await startRun(store, {
        runId,
        config,
        env,
        parent: null,
        origin: { step: 0, examplesSeen: 0 },
        signal: opts.signal,
        onRecord: opts.onRecord,
        command: opts.command,
        caller: callerParts(opts),
        cwd: opts.cwd,
      });
    } finally {
      env.session.dispose();
    }
  });
}

/** What a library caller supplied itself, named for the log. */
export function callerParts(opts: { dataset?: Dataset; model?: ModelFactory }): { dataset: boolean; model: string | null } {
  return { dataset: Boolean(opts.dataset), model: opts.model ? opts.model.name || 'anonymous' : null };
}

export interface StartRunOptions {
  runId: string;
  config: Config;
  env: RunEnvironment;
  parent: Parent | null;
  origin: { step: number; examplesSeen: number };
  /** Whether the data set and the model came from a library caller (recorded as `caller:NAME`). */
  caller?: { dataset: boolean; model: string | null };
  /** A branch starts from its parent's state instead of fresh weights. */
  initialState?: TrainerState;
  /** A branch (rules 2): the controller state and schedule position it inherits, the schedule it
   * continues (null: its own from the config), and what it inherited and overrode, for the log. */
  branchPlan?: BranchPlan;
  signal?: AbortSignal;
  onRecord?: RecordListener;
  command?: string;
  /** The folder relative paths (csv:, module:, initFrom) were typed in; default the current one. */
  cwd?: string;
}

/** Claims the run id, records the run's creation, and trains it to a stop. */
export async function startRun(store: RunStore, opts: StartRunOptions): Promise<RunSummary> {
  const { env, config } = opts;
  const files = recordedFiles(config, env, opts.caller ?? { dataset: false, model: null }, opts.cwd);
  if (opts.initialState) env.session.restore(opts.initialState);
  // The state the run starts from (a branch point, an init-from model or the seeded
  // initialisation), captured now: nothing changes the session before run.created.
  const startState = env.session.capture();
  const schedule = opts.branchPlan?.schedule ?? computeSchedule(config, env.dataset.train.size);
  const settings = settingsFrom(config, schedule, opts.branchPlan?.start);
  const created: RunCreated = {
    schemaVersion: SCHEMA_VERSION,
    rules: CURRENT_RULES,
    runId: opts.runId,
    retraceVersion: RETRACE_VERSION,
    nodeVersion: process.version,
    config: recordedConfig(config, opts.runId, env, opts.caller ?? { dataset: false, model: null }),
    settings,
    schedule,
    seed: config.seed,
    backend: env.backend,
    dataset: {
      name: env.dataset.name,
      fingerprint: env.dataset.fingerprint,
      inputShape: env.dataset.inputShape,
      numClasses: env.dataset.numClasses,
      classNames: env.dataset.classNames,
      featureNames: env.dataset.featureNames ?? null,
      trainSize: env.dataset.train.size,
      valSize: env.dataset.val.size,
    },
    model: {
      spec: opts.caller?.model != null ? `${CALLER_PREFIX}${opts.caller.model}` : config.initFrom ? `init-from:${config.initFrom}` : config.model,
      topology: env.session.topology,
      sourceHash: env.session.sourceHash,
      variables: canonicalVariables(env.session.model).map((v) => ({
        name: v.name,
        shape: v.shape,
        trainable: env.session.trainableVariableNames.includes(v.name),
      })),
    },
    optimizer: config.optimizer,
    parent: opts.parent,
    origin: opts.origin,
    files,
    ...(opts.branchPlan ? { inheritance: opts.branchPlan.inheritance } : {}),
  };

  // `start` (added below) is blob refs and a hash: whatever else the record holds decides whether
  // it reads back.
  checkRecordable(created);
  const log = await store.createRun(opts.runId, { parent: opts.parent?.runId ?? null });
  try {
    // The starting state is durable before run.created names it: from then on the run can be
    // resumed, and resume restores exactly this state, never a re-initialisation. A failure here
    // leaves an empty run that `train` claims again. The intent keeps every gc from deleting the
    // blobs until run.created is durable (released after its synced append).
    const startIntent = store.blobs.intent(opts.runId);
    created.start = await persistTrainerState(store.blobs, startState, startIntent);
    const emitter = new Emitter({ runId: opts.runId, log, expected: [], nextSeq: 0, snapshot: startMachine(settings), onRecord: opts.onRecord });
    await emitter.fact({ type: 'run.created', data: created }, { sync: true });
    await startIntent.release();
    await emitter.fact(processAttached(opts.command ?? 'train', env.backend, null, null), { sync: false });
    await drive({ runId: opts.runId, created, session: env.session, emitter, blobs: store.blobs, signal: opts.signal });
    await log.flush();
    return summarize(opts.runId, emitter.snapshot, env.session.weightsHash());
  } finally {
    await log.close();
  }
}
