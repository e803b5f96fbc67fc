// The run configuration: one schema, one table of defaults (README mirrors DEFAULTS), validated
// strictly so a typo in a config file is an error naming the field, never a silently ignored key.
import { z } from 'zod';

export const OPTIMIZERS = ['sgd', 'momentum', 'adam', 'rmsprop'] as const;
export const BACKENDS = ['auto', 'wasm', 'cpu', 'tensorflow'] as const;
export const MONITORS = ['valLoss', 'valAccuracy'] as const;

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const positiveNumber = z.number().positive().finite();

/**
 * Upper bounds of the keys that size a run. Chosen so that every schedule they allow, on any data
 * set of up to MAX_TRAINING_EXAMPLES examples, has step and example counts that are safe integers
 * (what run.created's and step.finished's schemas demand when the log is read back):
 * stepsPerEpoch × checkpoints ≤ trainingExamples × stopPoint / batchSize + checkpoints ≤ 2^32 × 10^6 + 10^6,
 * and the examples seen ≤ trainingExamples × stopPoint + checkpoints × batchSize, both < 2^53.
 * (`checkRunTotals` still checks the real numbers: a library caller's data set may be larger.)
 */
export const LIMITS = {
  batchSize: 2 ** 24,
  trainingExamples: 2 ** 32,
  stopPoint: 1e6,
  checkpoints: 1e6,
} as const;

/** Every key a config file or a flag may set. Flags use the kebab-case form (batchSize ↔ --batch-size). */
export const ConfigSchema = z
  .object({
    runId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'letters, digits, ".", "_" or "-", at most 100').optional(),
    dataset: z.string().regex(/^(mnist|iris|csv:.+)$/, 'mnist, iris or csv:PATH'),
    label: z.string().min(1),
    valFraction: z.number().gt(0).lt(1),
    model: z.string().regex(/^(mlp|cnn|module:.+)$/, 'mlp, cnn or module:PATH'),
    initFrom: z.string().min(1).nullable(),
    seed: z.number().int().min(0).max(2 ** 32 - 1),
    backend: z.enum(BACKENDS),
    batchSize: positiveInt.max(LIMITS.batchSize),
    trainingExamples: positiveInt.max(LIMITS.trainingExamples).nullable(),
    stopPoint: positiveNumber.max(LIMITS.stopPoint),
    checkpoints: positiveInt.max(LIMITS.checkpoints),
    lr: positiveNumber,
    optimizer: z.enum(OPTIMIZERS),
    momentum: z.number().min(0).lt(1),
    l2: z.number().min(0).finite(),
    warmupSteps: nonNegativeInt,
    earlyStopping: z.boolean(),
    reduceLrOnPlateau: z.boolean(),
    earlyStopPatience: positiveInt,
    plateauPatience: positiveInt,
    lrFactor: z.number().gt(0).lt(1),
    minLr: positiveNumber,
    minDelta: z.number().min(0).finite(),
    cooldown: nonNegativeInt,
    monitor: z.enum(MONITORS),
    divergenceThreshold: positiveNumber.nullable(),
    snapshotEvery: nonNegativeInt,
    freeze: z.array(z.string().min(1)),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = Partial<Config>;

/** A library caller's own data set or model factory is recorded by name under this prefix. */
export const CALLER_PREFIX = 'caller:';

/**
 * The config a run records in run.created (every default filled in), validated when the log is
 * read back: this schema, plus a library caller's own data set or model named `caller:NAME`, and
 * without `reduceLrOnPlateau` in runs made by retrace 0.1.0 (rules 1 always reduced the rate).
 */
export const RecordedConfigSchema = ConfigSchema.extend({
  dataset: z.union([ConfigSchema.shape.dataset, z.string().startsWith(CALLER_PREFIX)]),
  model: z.union([ConfigSchema.shape.model, z.string().startsWith(CALLER_PREFIX)]),
  reduceLrOnPlateau: ConfigSchema.shape.reduceLrOnPlateau.optional(),
});
export type RecordedConfig = z.infer<typeof RecordedConfigSchema>;

/** The defaults, as documented in README's table. */
export const DEFAULTS: Omit<Config, 'runId'> = {
  dataset: 'mnist',
  label: 'label',
  valFraction: 0.2,
  model: 'mlp',
  initFrom: null,
  seed: 42,
  backend: 'auto',
  batchSize: 64,
  trainingExamples: null,
  stopPoint: 5,
  checkpoints: 10,
  lr: 0.001,
  optimizer: 'adam',
  momentum: 0.9,
  l2: 0,
  warmupSteps: 0,
  earlyStopping: false,
  reduceLrOnPlateau: false,
  earlyStopPatience: 3,
  plateauPatience: 2,
  lrFactor: 0.5,
  minLr: 1e-5,
  minDelta: 1e-4,
  cooldown: 0,
  monitor: 'valLoss',
  divergenceThreshold: null,
  snapshotEvery: 0,
  freeze: [],
};

/** A user-caused configuration problem: one line, naming the field and what it allows. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.join('.') || '(config)';
  if (issue.code === 'unrecognized_keys') {
    return `unknown config key ${issue.keys.map((k) => `"${k}"`).join(', ')}; allowed keys: ${Object.keys(ConfigSchema.shape).join(', ')}`;
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `config field "${field}": must be one of ${(issue.values as unknown[]).join(', ')}`;
  }
  return `config field "${field}": ${issue.message}`;
}

/**
 * Merges defaults ← file ← flags (flags win) and validates the result. Throws ConfigError with a
 * one-line message on the first problem.
 */
export function resolveConfig(...layers: Array<Record<string, unknown> | undefined>): Config {
  const merged: Record<string, unknown> = { ...DEFAULTS };
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) merged[key] = value;
  }
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(describeIssue(parsed.error.issues[0]!));
  checkRates(parsed.data);
  return parsed.data;
}

/**
 * Every learning rate the machine computes must be a positive finite number, or the run stops at
 * a step after it was created (`lr: 5e-324` with 2 warmup steps gave a first rate of 0; `lr:
 * 1.7e308` with 2 warmup steps overflowed). Warmup's rate is `base × (step + 1) / warmupSteps`
 * (machines/training.machine.ts), with `base` between min(lr, minLr) and max(lr, minLr); the
 * formula itself stays as it is, so recorded runs replay bit for bit.
 */
function checkRates(config: Config): void {
  const n = config.warmupSteps;
  if (n === 0) return;
  const low = Math.min(config.lr, config.minLr);
  const high = Math.max(config.lr, config.minLr);
  if (!((low * 1) / n > 0)) {
    throw new ConfigError(`config fields "lr", "minLr", "warmupSteps": the first warmup rate ${low} / ${n} is 0 in floating point; raise lr (and minLr) or lower warmupSteps`);
  }
  if (!Number.isFinite(high * n)) {
    throw new ConfigError(`config fields "lr", "minLr", "warmupSteps": the warmup rate ${high} × ${n} overflows; lower lr (and minLr) or warmupSteps`);
  }
}

/** Checks a partial config (a file, or a branch's overrides) without filling defaults. */
export function validatePartialConfig(input: unknown, source: string): ConfigInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(`${source}: a config must be a JSON object`);
  }
  const parsed = ConfigSchema.partial().strict().safeParse(input);
  if (!parsed.success) throw new ConfigError(`${source}: ${describeIssue(parsed.error.issues[0]!)}`);
  return parsed.data;
}

/** The step schedule implied by virtual epochs (the checkpoints pattern): the run sees
 * trainingExamples × stopPoint examples, whatever the batch size (within one batch). */
export interface Schedule {
  readonly batchSize: number;
  readonly trainingExamples: number;
  readonly stopPoint: number;
  readonly checkpoints: number;
  /** The longest gap between two checkpoints, in steps (gaps differ by at most one step). */
  readonly stepsPerEpoch: number;
  /** The training budget: the step count closest to trainingExamples × stopPoint / batchSize. */
  readonly totalSteps: number;
  readonly warmupSteps: number;
  /** trainingExamples × stopPoint / checkpoints: the examples between two checkpoints. */
  readonly examplesPerEpoch: number;
}

/** Steps whose examples (steps × batchSize) come closest to trainingExamples × stopPoint: never
 * more than half a batch off, and at least one step. */
export function scheduleSteps(trainingExamples: number, stopPoint: number, batchSize: number): number {
  return Math.max(1, Math.round((trainingExamples * stopPoint) / batchSize));
}

/**
 * The schedule of a new run (rules 2): `totalSteps` from scheduleSteps, and `checkpoints` epoch
 * checkpoints spread over it as evenly as integers allow (checkpoint k after floor(k × totalSteps /
 * checkpoints) steps; the last one ends the budget). `trainingExamples` defaults to the training
 * split's size. Throws ConfigError when there are more checkpoints than steps, or when its step or
 * example counts are not safe integers (a run's log could not be read back), naming the keys.
 */
export function computeSchedule(config: Config, datasetTrainSize: number): Schedule {
  const trainingExamples = config.trainingExamples ?? datasetTrainSize;
  const totalSteps = scheduleSteps(trainingExamples, config.stopPoint, config.batchSize);
  checkRunTotals({ totalSteps, batchSize: config.batchSize, trainingExamples });
  if (config.checkpoints > totalSteps) {
    throw new ConfigError(
      `config field "checkpoints": ${config.checkpoints} checkpoints do not fit in this run's ${totalSteps} step(s) ` +
        `(${trainingExamples} training examples × stopPoint ${config.stopPoint} / batchSize ${config.batchSize}); ` +
        `use at most ${totalSteps} checkpoints, a larger stopPoint or a smaller batchSize`,
    );
  }
  return {
    batchSize: config.batchSize,
    trainingExamples,
    stopPoint: config.stopPoint,
    checkpoints: config.checkpoints,
    stepsPerEpoch: Math.ceil(totalSteps / config.checkpoints),
    totalSteps,
    warmupSteps: config.warmupSteps,
    examplesPerEpoch: (trainingExamples * config.stopPoint) / config.checkpoints,
  };
}

/**
 * Refuses a schedule whose totals are not exact integers in a double (over 2^53 - 1): the log
 * stores steps and examples seen as JSON numbers that must read back as the same integers.
 * `origin` is where a branch's counters start. Throws ConfigError naming the keys.
 */
export function checkRunTotals(
  s: { totalSteps: number; batchSize: number; trainingExamples: number },
  origin: { step: number; examplesSeen: number } = { step: 0, examplesSeen: 0 },
): void {
  const max = Number.MAX_SAFE_INTEGER;
  const totalSteps = s.totalSteps;
  const examples = totalSteps * s.batchSize;
  if (!Number.isSafeInteger(s.trainingExamples)) {
    throw new ConfigError(`config field "trainingExamples": ${s.trainingExamples} is more than ${max} examples; set trainingExamples lower`);
  }
  if (!Number.isSafeInteger(totalSteps) || totalSteps + origin.step > max) {
    throw new ConfigError(
      `config fields "stopPoint", "trainingExamples", "batchSize": the run would take ${totalSteps} steps, more than ${max}; lower stopPoint or trainingExamples, or raise batchSize`,
    );
  }
  if (!Number.isSafeInteger(examples) || examples + origin.examplesSeen > max) {
    throw new ConfigError(
      `config fields "stopPoint", "trainingExamples", "batchSize": the run would see ${examples} examples, more than ${max}; lower stopPoint or trainingExamples`,
    );
  }
}

/** Config keys as CLI flags: batchSize → batch-size. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
