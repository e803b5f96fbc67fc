// Builds what a run computes with (backend, data set, model, optimizer) from a config, and says
// what differs from a run's recorded environment (resume and replay refuse a different one).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config, Schedule } from '../config.js';
import type { RunCreated } from '../log/events.js';
import type { TrainingSettings } from '../../machines/training.events.js';
import { CURRENT_RULES } from '../../machines/training.machine.js';
import { BackendError, initBackend } from '../train/backend.js';
import { loadDataset } from '../train/data/index.js';
import type { ModelFactory } from '../train/models.js';
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

/** A recorded run's environment, built again (resume, replay): its config and its backend unless
 * the caller names another, with the caller's own data and model where the run was made with them. */
export async function rebuildEnvironment(
  created: RunCreated,
  opts: { backend?: BackendRequest; cwd?: string; dataset?: Dataset; model?: ModelFactory; onWarning?: (message: string) => void },
  action: string,
): Promise<RunEnvironment> {
  requireCallerParts(created, { dataset: opts.dataset, model: opts.model }, action);
  return buildEnvironment({
    config: created.config as unknown as Config,
    backend: opts.backend ?? created.backend.name,
    cwd: opts.cwd,
    dataset: opts.dataset,
    modelFactory: opts.model,
    onWarning: opts.onWarning,
  });
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
export const CALLER_PREFIX = 'caller:';

export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

export function requireCallerParts(created: RunCreated, given: { dataset?: unknown; model?: unknown }, action: string): void {
  const config = created.config as { dataset?: unknown; model?: unknown };
  if (String(config.dataset).startsWith(CALLER_PREFIX) && !given.dataset) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: it was trained on the caller's data set "${created.dataset.name}"; pass the same data as \`dataset\``);
  }
  if (String(config.model).startsWith(CALLER_PREFIX) && !given.model) {
    throw new EnvironmentError(`cannot ${action} run ${created.runId}: it was trained with the caller's model factory (${String(config.model)}); pass it again as \`model\``);
  }
}

/** The config as recorded: the caller's own data or model named instead of the defaults they replaced. */
export function recordedConfig(config: Config, runId: string, env: RunEnvironment, caller: { dataset: boolean; model: string | null }): Record<string, unknown> {
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
  const { runId: _runId, ...rest } = created.config as Record<string, unknown>;
  void _runId;
  for (const key of ['dataset', 'model'] as const) if (String(rest[key]).startsWith(CALLER_PREFIX)) delete rest[key];
  // Rules 1 (retrace 0.1.0) always reduced the rate on a plateau: its branches keep doing so.
  if ((created.rules ?? 1) < 2 && !('reduceLrOnPlateau' in rest)) rest.reduceLrOnPlateau = true;
  return rest;
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
