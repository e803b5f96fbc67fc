// `retrace train`: a new run from a config. Everything that can fail on user input (config, data,
// model, backend) is checked before the run id is claimed, so a bad config leaves no empty run.
import { startMachine } from '../../machines/fold.js';
import { computeSchedule, resolveConfig, type Config, type ConfigInput } from '../config.js';
import { RunExistsError } from '../log/errors.js';
import { SCHEMA_VERSION, type Parent, type RunCreated } from '../log/events.js';
import type { Dataset } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';
import { processAttached, summarize, withStore, newRunId, type RecordListener, type RunSummary, type StoreOption } from './common.js';
import { drive } from './driver.js';
import { Emitter } from './emitter.js';
import { buildEnvironment, CALLER_PREFIX, recordedConfig, RETRACE_VERSION, settingsFrom, type RunEnvironment } from './environment.js';
import type { TrainerState } from '../train/types.js';
import { canonicalVariables } from '../train/weights.js';
import type { Store } from '../log/store.js';
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
  return withStore(opts, async (store) => {
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
  signal?: AbortSignal;
  onRecord?: RecordListener;
  command?: string;
}

/** Claims the run id, records the run's creation, and trains it to a stop. */
export async function startRun(store: Store, opts: StartRunOptions): Promise<RunSummary> {
  const { env, config } = opts;
  if (opts.initialState) env.session.restore(opts.initialState);
  const schedule = computeSchedule(config, env.dataset.train.size);
  const settings = settingsFrom(config, schedule);
  const created: RunCreated = {
    schemaVersion: SCHEMA_VERSION,
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
  };

  checkRecordable(created);
  const log = await store.createRun(opts.runId);
  try {
    const emitter = new Emitter({ runId: opts.runId, log, expected: [], nextSeq: 0, snapshot: startMachine(settings), onRecord: opts.onRecord });
    await emitter.fact({ type: 'run.created', data: created }, { sync: true });
    await emitter.fact(processAttached(opts.command ?? 'train', env.backend, null, null), { sync: false });
    await drive({ runId: opts.runId, created, session: env.session, emitter, blobs: store.blobs, signal: opts.signal });
    await log.flush();
    return summarize(opts.runId, emitter.snapshot, env.session.weightsHash());
  } finally {
    await log.close();
  }
}
