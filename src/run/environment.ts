// Builds what a run computes with (backend, data set, model, optimizer) from a config, and says
// what differs from a run's recorded environment (resume and replay refuse a different one).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CALLER_PREFIX, type Config, type RecordedConfig, type Schedule } from '../config.js';
import type { RunCreated, RunFiles } from '../log/events.js';
import type { TrainingSettings } from '../../machines/training.events.js';
import { CURRENT_RULES } from '../../machines/training.machine.js';
import { BackendError, initBackend } from '../train/backend.js';
import type * as tfTypes from '@tensorflow/tfjs';
import { DatasetError, loadDataset } from '../train/data/index.js';
import { buildFromFactory, buildModel, ModelError, type ModelFactory } from '../train/models.js';
import { createSession, type TrainingSession } from '../train/session.js';
import type { BackendInfo, BackendRequest, Dataset, Tf } from '../train/types.js';

export interface RunEnvironment {
  tf: Tf;
  backend: BackendInfo;
  dataset: Dataset;
  session: TrainingSession;
}

export interface EnvironmentOptions {
  config: Config;
  backend: BackendRequest;
  cwd?: string;
  /** Library callers pass their own data and model factory instead of names. */
  dataset?: Dataset;
  modelFactory?: ModelFactory;
  onWarning?: (message: string) => void;
}

export async function buildEnvironment(opts: EnvironmentOptions): Promise<RunEnvironment> {
  const dataset =
    opts.dataset ??
    (await loadDataset(opts.config.dataset, {
      label: opts.config.label,
      valFraction: opts.config.valFraction,
      seed: opts.config.seed,
      cwd: opts.cwd,
    }));
  const build = async (request: BackendRequest): Promise<RunEnvironment & { missing: string | null }> => {
    const { tf, info } = await initBackend(request);
    const session = await createSession({ tf, backend: info, dataset, config: opts.config, modelFactory: opts.modelFactory, cwd: opts.cwd });
    const missing = info.name === 'wasm' ? missingTrainingKernel(tf, session, dataset) : null;
    return { tf, backend: info, dataset, session, missing };
  };
  const env = await build(opts.backend);
  if (!env.missing) return env;
  env.session.dispose();
  // tfjs-backend-wasm lacks some gradient kernels (e.g. Conv2DBackpropFilter for convolutions).
  if (opts.backend === 'auto') {
    opts.onWarning?.(`the wasm backend cannot train this model (no ${env.missing} kernel): using the cpu backend`);
    const cpu = await build('cpu');
    return cpu;
  }
  throw new BackendError(`the ${env.backend.name} backend cannot train this model (no ${env.missing} kernel); use --backend cpu${opts.backend === 'wasm' ? ' or auto' : ''}`);
}

/** Where a recorded run's files are to be found now, when they moved: specs as typed
 * (`csv:PATH`, `module:PATH`), a relative PATH against the command's folder. Accepted when the
 * file's fingerprint matches the recorded one. */
export interface Relocation {
  dataset?: string;
  model?: string;
}

export interface RebuildOptions {
  backend?: BackendRequest;
  cwd?: string;
  /** The caller's own data and model, for runs made with them (recorded as `caller:NAME`). */
  dataset?: Dataset;
  model?: ModelFactory;
  relocate?: Relocation;
  onWarning?: (message: string) => void;
}

/**
 * The data set and model specs to rebuild a recorded run with: a relocation the caller gives,
 * else the absolute paths recorded at creation, else (logs from before they were recorded, or a
 * recorded path that is gone while the typed relative path exists from `cwd`, e.g. a project
 * folder moved as a whole) the specs as typed, relative to `cwd`. Whatever is found is accepted
 * only if its fingerprint matches the recorded one (checked by the callers).
 */
export function specsNow(created: RunCreated, relocate: Relocation = {}, cwd = process.cwd()): { dataset: string; model: string } {
  const config = created.config;
  const files = created.files ?? {};
  const pick = (file: RunFiles['dataset'], prefix: string, typed: string): string => {
    if (!file) return typed;
    if (!existsSync(file.path) && typed.startsWith(prefix) && existsSync(path.resolve(cwd, typed.slice(prefix.length)))) return typed;
    return `${prefix}${file.path}`;
  };
  return {
    dataset: relocate.dataset ?? pick(files.dataset, 'csv:', String(config.dataset)),
    model: relocate.model ?? pick(files.model, 'module:', String(config.model)),
  };
}

/** A recorded file that cannot be read: the message says how to point at its new place. */
function whereMovedHint(created: RunCreated, err: unknown, action: string, relocate: Relocation): never {
  const message = (err as Error).message;
  if (err instanceof DatasetError && !relocate.dataset && /not found|is a directory/.test(message)) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: ${message}; if it moved, pass --dataset csv:NEWPATH (accepted when its data match the recorded fingerprint)`);
  }
  if (err instanceof ModelError && !relocate.model && /module not found/.test(message)) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: ${message}; if it moved, pass --model module:NEWPATH (accepted when its source matches the recorded fingerprint)`);
  }
  throw err;
}

/** A model from a run's recorded topology (the architecture is in the log). Custom layer classes
 * must be registered first: `unregistered()` names the class tfjs did not know, if that is why it failed. */
function topologyFactory(created: RunCreated): { factory: ModelFactory; unregistered: () => string | null } {
  let unknown: string | null = null;
  const factory: ModelFactory = async ({ tf }) => {
    try {
      return await tf.models.modelFromJSON({ modelTopology: created.model.topology as never });
    } catch (err) {
      unknown = /Unknown layer: ([^\s.]+)/.exec((err as Error).message)?.[1] ?? null;
      throw err;
    }
  };
  Object.defineProperty(factory, 'name', { value: 'recorded-topology' });
  return { factory, unregistered: () => unknown };
}

function unregisteredLayer(created: RunCreated, className: string, action: string): EnvironmentError {
  return new EnvironmentError(
    `cannot ${action} run ${created.runId}: its model uses the custom layer class ${className}, which is not registered; pass the model factory that registers it (\`model\`)`,
  );
}

/** A recorded run's environment, built again (resume, replay, export of a step, branch from a
 * step): its config and its backend unless the caller names another, its files where they were
 * recorded (or relocated), with the caller's own data and model where the run was made with them.
 * A model started from --init-from is rebuilt from the recorded topology (its weights come from
 * the checkpoints). Throws EnvironmentError when a recorded file cannot be found. */
export async function rebuildEnvironment(created: RunCreated, opts: RebuildOptions, action: string): Promise<RunEnvironment> {
  requireCallerParts(created, { dataset: opts.dataset, model: opts.model }, action);
  const relocate = opts.relocate ?? {};
  // Rules 1 runs recorded no reduceLrOnPlateau: they always reduced (as inheritableConfig says).
  const config: Config = { ...created.config, reduceLrOnPlateau: created.config.reduceLrOnPlateau ?? true, ...specsNow(created, relocate, opts.cwd) };
  const topology = !opts.model && config.initFrom != null ? topologyFactory(created) : null;
  try {
    return await buildEnvironment({
      config,
      backend: opts.backend ?? created.backend.name,
      cwd: opts.cwd,
      dataset: opts.dataset,
      modelFactory: opts.model ?? topology?.factory,
      onWarning: opts.onWarning,
    });
  } catch (err) {
    const unknown = topology?.unregistered();
    if (unknown) throw unregisteredLayer(created, unknown, action);
    return whereMovedHint(created, err, action, relocate);
  }
}

/**
 * A recorded run's model without its data (export of a checkpoint): a `module:` model is built by
 * its module (which registers any custom layer classes) after checking that the module's source
 * has the recorded fingerprint; other models come from the recorded topology (a caller's model from
 * its factory when given). Throws EnvironmentError (one line) when the module is missing, differs,
 * or a custom layer is not registered.
 */
export async function rebuildModel(
  tf: Tf,
  created: RunCreated,
  opts: { cwd?: string; model?: ModelFactory; relocate?: Relocation },
  action: string,
): Promise<tfTypes.LayersModel> {
  const relocate = opts.relocate ?? {};
  const spec = specsNow(created, relocate, opts.cwd).model;
  const config = created.config;
  const args = { tf, inputShape: created.dataset.inputShape, numClasses: created.dataset.numClasses, seed: created.seed, cwd: opts.cwd };
  if (opts.model) return (await buildFromFactory(opts.model, args, 'model factory')).model;
  if (!spec.startsWith('module:') || config.initFrom != null) {
    const topology = topologyFactory(created);
    try {
      return (await buildFromFactory(topology.factory, args, 'the recorded topology')).model;
    } catch (err) {
      const unknown = topology.unregistered();
      throw unknown ? unregisteredLayer(created, unknown, action) : err;
    }
  }
  let built: Awaited<ReturnType<typeof buildModel>>;
  try {
    built = await buildModel(spec, args);
  } catch (err) {
    return whereMovedHint(created, err, action, relocate);
  }
  if (built.sourceHash !== created.model.sourceHash) {
    built.model.dispose();
    throw new EnvironmentError(
      `cannot ${action} run ${created.runId}: model module ${spec.slice('module:'.length)} has changed since the run was recorded (fingerprint ${String(created.model.sourceHash).slice(0, 12)} → ${String(built.sourceHash).slice(0, 12)}); restore it, or pass --model module:PATH of an unchanged copy`,
    );
  }
  return built.model;
}

/** Runs the model's gradient once on one zero example (weights restored afterwards) to find a
 * kernel the backend lacks, before a run is created rather than at its first step. */
function missingTrainingKernel(tf: Tf, session: TrainingSession, dataset: Dataset): string | null {
  const saved = session.capture();
  try {
    tf.tidy(() => {
      const x = tf.zeros([1, ...dataset.inputShape]);
      const vars = session.model.trainableWeights.map((w) => w.read() as import('@tensorflow/tfjs').Variable);
      if (vars.length === 0) return;
      tf.variableGrads(() => tf.mean(session.model.apply(x, { training: true }) as import('@tensorflow/tfjs').Tensor) as import('@tensorflow/tfjs').Scalar, vars);
    });
    return null;
  } catch (err) {
    const m = /Kernel '(\w+)' not registered/.exec((err as Error).message);
    if (m) return m[1]!;
    throw err;
  } finally {
    session.restore(saved);
  }
}

/** A library caller's own data or model is recorded as `caller:NAME`: code and data cannot live
 * in a log, so resume, replay and branch of such a run need them passed again. */
export { CALLER_PREFIX };

export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

export function requireCallerParts(created: RunCreated, given: { dataset?: unknown; model?: unknown }, action: string): void {
  const config = created.config;
  if (String(config.dataset).startsWith(CALLER_PREFIX) && !given.dataset) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: it was trained on the caller's data set "${created.dataset.name}"; pass the same data as \`dataset\``);
  }
  if (String(config.model).startsWith(CALLER_PREFIX) && !given.model) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: it was trained with the caller's model factory (${String(config.model)}); pass it again as \`model\``);
  }
}

/** The config as recorded: the caller's own data or model named instead of the defaults they replaced. */
export function recordedConfig(config: Config, runId: string, env: RunEnvironment, caller: { dataset: boolean; model: string | null }): RecordedConfig {
  return {
    ...config,
    runId,
    ...(caller.dataset ? { dataset: `${CALLER_PREFIX}${env.dataset.name}` } : {}),
    ...(caller.model !== null ? { model: `${CALLER_PREFIX}${caller.model}`, initFrom: null } : {}),
  };
}

/** Config values a new run inherits from a recorded one: `caller:` values fall back to the defaults
 * (the caller passes the real thing again). */
export function inheritableConfig(created: RunCreated): Record<string, unknown> {
  const { runId: _runId, ...recorded } = created.config;
  const rest: Record<string, unknown> = recorded;
  void _runId;
  for (const key of ['dataset', 'model'] as const) if (String(rest[key]).startsWith(CALLER_PREFIX)) delete rest[key];
  // The parent's files where they were recorded, not where their typed paths point from here.
  const files = created.files ?? {};
  if (files.dataset) rest.dataset = `csv:${files.dataset.path}`;
  if (files.model) rest.model = `module:${files.model.path}`;
  if (files.initFrom) rest.initFrom = files.initFrom.path;
  // Rules 1 (retrace 0.1.0) always reduced the rate on a plateau: its branches keep doing so.
  if ((created.rules ?? 1) < 2 && !('reduceLrOnPlateau' in rest)) rest.reduceLrOnPlateau = true;
  return rest;
}

/**
 * What a branch inherits unchanged but finds different from its parent's record (the parent's
 * CSV or module edited since): in words, empty when all match. Data are compared only when
 * nothing that shapes them (dataset, label, valFraction, seed) was overridden.
 */
export function inheritedDifferences(created: RunCreated, env: RunEnvironment, overrides: Record<string, unknown> = {}): string[] {
  const diffs: string[] = [];
  const files = created.files ?? {};
  const dataShaped = ['dataset', 'label', 'valFraction', 'seed'].some((k) => overrides[k] !== undefined);
  if (files.dataset && !dataShaped && env.dataset.fingerprint !== files.dataset.fingerprint) {
    diffs.push(`its data set ${files.dataset.path} has changed since the run was recorded (fingerprint ${files.dataset.fingerprint.slice(0, 12)} → ${env.dataset.fingerprint.slice(0, 12)})`);
  }
  if (files.model && overrides.model === undefined && overrides.initFrom === undefined && env.session.sourceHash !== files.model.fingerprint) {
    diffs.push(`its model module ${files.model.path} has changed since the run was recorded (fingerprint ${files.model.fingerprint.slice(0, 12)} → ${String(env.session.sourceHash).slice(0, 12)})`);
  }
  return diffs;
}

/**
 * A branch from a step between checkpoints re-executes its parent, which needs the parent's files.
 * When one is gone from its recorded place, the branch's own `--dataset csv:PATH` / `--model
 * module:PATH` is taken as where it moved (accepted only with the parent's fingerprint).
 */
export function parentRelocation(created: RunCreated, overrides: Record<string, unknown> = {}, cwd = process.cwd()): Relocation {
  const out: Relocation = {};
  const files = created.files ?? {};
  const now = specsNow(created, {}, cwd);
  const gone = (spec: string, prefix: string) => !existsSync(path.resolve(cwd, spec.slice(prefix.length)));
  if (files.dataset && typeof overrides.dataset === 'string' && overrides.dataset.startsWith('csv:') && gone(now.dataset, 'csv:')) out.dataset = overrides.dataset;
  if (files.model && typeof overrides.model === 'string' && overrides.model.startsWith('module:') && gone(now.model, 'module:')) out.model = overrides.model;
  return out;
}

/**
 * The files a new run depends on, by absolute path (resolved against `cwd`, default the current
 * folder) and fingerprint: a `csv:` data set (its data fingerprint), a `module:` model (its
 * source's SHA-256) and an --init-from model (its weightsHash). Call before any state is restored
 * into the session. A caller's own data or model is no file.
 */
export function recordedFiles(config: Config, env: RunEnvironment, caller: { dataset: boolean; model: string | null }, cwd = process.cwd()): RunFiles {
  const files: RunFiles = {};
  if (!caller.dataset && config.dataset.startsWith('csv:')) {
    files.dataset = { spec: config.dataset, path: path.resolve(cwd, config.dataset.slice('csv:'.length)), fingerprint: env.dataset.fingerprint };
  }
  if (caller.model === null && config.initFrom != null) {
    files.initFrom = { spec: config.initFrom, path: path.resolve(cwd, config.initFrom), fingerprint: env.session.weightsHash() };
  } else if (caller.model === null && config.model.startsWith('module:') && env.session.sourceHash !== null) {
    files.model = { spec: config.model, path: path.resolve(cwd, config.model.slice('module:'.length)), fingerprint: env.session.sourceHash };
  }
  return files;
}

/** Where a branch starts: the parts of TrainingSettings it inherits from its parent (rules 2). */
export type BranchStart = Pick<TrainingSettings, 'plan' | 'scheduleOffset' | 'warmupOffset' | 'inherited'>;

/** The machine's settings for a new run (current rules), optionally starting from a branch point. */
export function settingsFrom(config: Config, schedule: Schedule, start: BranchStart = {}): TrainingSettings {
  return {
    rules: CURRENT_RULES,
    checkpoints: schedule.checkpoints,
    reduceLrOnPlateau: config.reduceLrOnPlateau,
    ...start,
    stepsPerEpoch: schedule.stepsPerEpoch,
    totalSteps: schedule.totalSteps,
    batchSize: schedule.batchSize,
    warmupSteps: schedule.warmupSteps,
    baseLr: config.lr,
    minLr: config.minLr,
    lrFactor: config.lrFactor,
    minDelta: config.minDelta,
    plateauPatience: config.plateauPatience,
    cooldown: config.cooldown,
    earlyStopping: config.earlyStopping,
    earlyStopPatience: config.earlyStopPatience,
    monitor: config.monitor,
    divergenceThreshold: config.divergenceThreshold,
  };
}

/** retrace's own version, from the package.json above this file (in src/ or in dist/src/). */
export const RETRACE_VERSION: string = (() => {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i += 1, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return (require(file) as { version: string }).version;
  }
  return 'unknown';
})();

/** What makes a run's computation different from its recorded one, in words for the user. */
export function environmentDifferences(created: RunCreated, env: RunEnvironment): string[] {
  const diffs: string[] = [];
  if (created.dataset.fingerprint !== env.dataset.fingerprint) {
    diffs.push(`data set ${created.dataset.name} has changed (fingerprint ${created.dataset.fingerprint.slice(0, 12)} → ${env.dataset.fingerprint.slice(0, 12)})`);
  }
  if (created.model.sourceHash !== env.session.sourceHash) {
    diffs.push(`model module source has changed (${String(created.model.sourceHash).slice(0, 12)} → ${String(env.session.sourceHash).slice(0, 12)})`);
  }
  if (created.backend.tfjsVersion !== env.backend.tfjsVersion) {
    diffs.push(`tfjs version differs (recorded ${created.backend.tfjsVersion}, here ${env.backend.tfjsVersion})`);
  }
  return diffs;
}

/** A different backend (or version) runs, but bit-exactness is promised only within one. */
export function backendMismatch(recorded: BackendInfo, here: BackendInfo): string | null {
  if (recorded.name !== here.name || recorded.version !== here.version || recorded.threads !== here.threads) {
    return `recorded on ${recorded.name} ${recorded.version} (${recorded.threads} thread(s)), running on ${here.name} ${here.version} (${here.threads} thread(s)): results are not promised to be bit-identical`;
  }
  return null;
}
