// The run configuration: one schema, one table of defaults (README mirrors DEFAULTS), validated
// strictly so a typo in a config file is an error naming the field, never a silently ignored key.
import { z } from 'zod';

export const OPTIMIZERS = ['sgd', 'momentum', 'adam', 'rmsprop'] as const;
export const BACKENDS = ['auto', 'wasm', 'cpu', 'tensorflow'] as const;
export const MONITORS = ['valLoss', 'valAccuracy'] as const;

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const positiveNumber = z.number().positive().finite();

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
    batchSize: positiveInt,
    trainingExamples: positiveInt.nullable(),
    stopPoint: positiveNumber,
    checkpoints: positiveInt,
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
  return parsed.data;
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
 * split's size. Throws ConfigError when there are more checkpoints than steps.
 */
export function computeSchedule(config: Config, datasetTrainSize: number): Schedule {
  const trainingExamples = config.trainingExamples ?? datasetTrainSize;
  const totalSteps = scheduleSteps(trainingExamples, config.stopPoint, config.batchSize);
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

/** Config keys as CLI flags: batchSize → batch-size. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
