// The training machine's inputs: one typed event per fact the driver observed, as `{type, data}`.
// These zod schemas are the ONE definition of each event's payload: the TypeScript types below
// are derived from them, and the log's record schemas (src/log/events.ts) are built from them, so
// a logged record is the machine event (the driver sends exactly what it logs, and folding the
// log reproduces every snapshot). machines/ stays pure: zod is data validation, no I/O.
import { z } from 'zod';

/**
 * A float as the machine sees it: any number, NaN and ±Infinity included (a diverged step's loss).
 * JSON cannot carry the non-finite ones; the log writes them as the strings "NaN", "Infinity",
 * "-Infinity" — only in fields declared with this schema — and reads them back as numbers. Parsing
 * (decode) accepts a number or one of those strings and gives a number; `z.encode` gives the
 * stored form. Everything else stays strict: a NaN in any other field cannot be written.
 */
const StoredFloatSchema = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
export const loggedFloat = z.codec(StoredFloatSchema, z.custom<number>((x) => typeof x === 'number', 'expected a number'), {
  decode: (x) => (typeof x === 'number' ? x : Number(x)),
  encode: (x) => storedFloat(x),
});

/** A loggedFloat's stored form: what the log (and the dashboard's JSON) carries. */
export type StoredFloat = z.infer<typeof StoredFloatSchema>;

/** The stored form of a float (NaN → "NaN"): for JSON a reader sends on (the dashboard's series). */
export function storedFloat(x: number): StoredFloat {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return 'Infinity';
  if (x === Number.NEGATIVE_INFINITY) return '-Infinity';
  return x;
}

/**
 * A float inside a stored machine snapshot (checkpoint.committed.machine): the same idea, but
 * written as {"$float": "NaN"} — the form snapshots have always been stored in, which must not
 * change (fsck compares stored snapshots with folded ones byte for byte).
 */
export const snapshotFloat = z.codec(
  z.union([z.number(), z.object({ $float: z.enum(['NaN', 'Infinity', '-Infinity']) }).strict()]),
  z.custom<number>((x) => typeof x === 'number', 'expected a number'),
  {
    decode: (x) => (typeof x === 'number' ? x : Number(x.$float)),
    encode: (x) => (Number.isFinite(x) ? x : { $float: String(x) as 'NaN' | 'Infinity' | '-Infinity' }),
  },
);

/** Why a run stopped. `interrupted` is resumable as it is; under rules 2 a run stopped on budget,
 * early stop or plateau can be extended (`run.extended`) and trains on. */
export const StopReasonSchema = z.enum(['budget', 'early-stop', 'plateau', 'diverged', 'interrupted']);
export type StopReason = z.infer<typeof StopReasonSchema>;

/** What kind of checkpoint was committed. Only `epoch` checkpoints count as one of the run's
 * `checkpoints`; `initial` is checkpoint 0; `interrupt` moves no training counter (rules 2: it is
 * numbered apart, `int:N`). */
export const CheckpointKindSchema = z.enum(['initial', 'epoch', 'interrupt']);
export type CheckpointKind = z.infer<typeof CheckpointKindSchema>;

/** One optimizer step finished. `lr` is the rate it used; `weightsFinite` is checked at
 * virtual-epoch boundaries only (hashing every step would cost the hot path). */
export const StepFinishedData = z.object({
  step: z.number().int().positive(),
  loss: loggedFloat,
  lr: z.number(),
  examplesSeen: z.number().int().nonnegative(),
  weightsFinite: z.boolean().optional(),
});

/** Validation finished for the weights after `step`. */
export const EvalFinishedData = z.object({
  step: z.number().int().nonnegative(),
  valLoss: loggedFloat,
  valAccuracy: z.number(),
});

/** A checkpoint is durable (blobs fsynced, event synced). `index` is the checkpoint's number:
 * 0 for initial, 1.. for epoch checkpoints; for interrupts, rules 1 repeated the index of the last
 * epoch one, rules 2 numbers them apart, 1.. in the order they were made (`int:N`). The log's
 * record adds the tensors and the stored snapshot (src/log/events.ts). */
export const CheckpointCommittedData = z.object({
  kind: CheckpointKindSchema,
  index: z.number().int().nonnegative(),
  step: z.number().int().nonnegative(),
  weightsHash: z.string(),
});

/** Someone asked the run to stop (Ctrl-C, SIGTERM, an AbortSignal). */
export const StopRequestedData = z.object({ source: z.enum(['signal', 'api']) });

/** An interrupted run continues. */
export const RunResumedData = z.object({});

/** An export of a checkpoint finished. `kind` (rules 2) tells `ckpt:K` from `int:N`. */
export const ExportFinishedData = z.object({
  /** The checkpoint exported; for a step between checkpoints, the one re-executed from. */
  checkpoint: z.number().int().nonnegative(),
  kind: CheckpointKindSchema.optional(),
  out: z.string(),
});

/** Rules 2: the budget of a stopped run (budget, early stop, plateau or interrupt) was extended:
 * the schedule now ends at `totalSteps` with `checkpoints` checkpoints in all (schedule steps and
 * checkpoints, counted from the start of the schedule: see TrainingSettings.scheduleOffset). */
export const RunExtendedData = z.object({
  stopPoint: z.number().positive(),
  checkpoints: z.number().int().positive(),
  totalSteps: z.number().int().positive(),
});

/** Every machine input: its type and its payload's schema. */
export const TRAINING_EVENT_DATA = {
  'step.finished': StepFinishedData,
  'eval.finished': EvalFinishedData,
  'checkpoint.committed': CheckpointCommittedData,
  'stop.requested': StopRequestedData,
  'run.resumed': RunResumedData,
  'export.finished': ExportFinishedData,
  'run.extended': RunExtendedData,
} as const;

export type TrainingEventType = keyof typeof TRAINING_EVENT_DATA;

/** One machine event of type T: `{type, data}`, data as the machine reads it (floats are numbers). */
export type TrainingEventOf<T extends TrainingEventType> = { type: T; data: z.output<(typeof TRAINING_EVENT_DATA)[T]> };
export type TrainingEvent = { [T in TrainingEventType]: TrainingEventOf<T> }[TrainingEventType];

export type StepFinished = TrainingEventOf<'step.finished'>;
export type EvalFinished = TrainingEventOf<'eval.finished'>;
export type CheckpointCommitted = TrainingEventOf<'checkpoint.committed'>;
export type StopRequested = TrainingEventOf<'stop.requested'>;
export type RunResumed = TrainingEventOf<'run.resumed'>;
export type ExportFinished = TrainingEventOf<'export.finished'>;
export type RunExtended = TrainingEventOf<'run.extended'>;

export const TRAINING_EVENT_TYPES = Object.keys(TRAINING_EVENT_DATA) as readonly TrainingEventType[];

/** Whether a record of this type is a machine input (derived from the schema above). A record
 * that is one can be sent to the machine as it is: its data holds at least the event's fields. */
export function isTrainingEvent<R extends { type: string }>(record: R): record is R & TrainingEvent {
  return Object.hasOwn(TRAINING_EVENT_DATA, record.type);
}

/** Rules 2: the current stretch of the schedule, in schedule steps and epoch checkpoints (counted
 * from the schedule's start, which for a branch continuing its parent's schedule is the parent's):
 * checkpoints `fromCheckpoint+1 .. toCheckpoint` fall at `fromStep + floor(j × (toStep − fromStep) /
 * (toCheckpoint − fromCheckpoint))`, j = 1.., the last one at `toStep`, where the budget ends. */
export const SchedulePlanSchema = z.object({
  fromStep: z.number().int().nonnegative(),
  fromCheckpoint: z.number().int().nonnegative(),
  toStep: z.number().int().positive(),
  toCheckpoint: z.number().int().positive(),
});
export type SchedulePlan = z.infer<typeof SchedulePlanSchema>;

/** ReduceLROnPlateau's and early stopping's state at a branch point, carried into the branch. */
export const InheritedControllerSchema = z.object({
  currentBaseLr: z.number().positive(),
  sinceImprovement: z.number().int().nonnegative(),
  plateauWait: z.number().int().nonnegative(),
  cooldownLeft: z.number().int().nonnegative(),
  /** The best monitored value (oriented: smaller is better) the decisions compare against. A
   * non-finite best (a run diverged from its start) is inherited as null: no best yet. */
  bestMetric: z.number().nullable(),
});
export type InheritedController = z.infer<typeof InheritedControllerSchema>;

/** The settings the machine decides with; fixed for a run (a branch gets its own). Fields marked
 * rules 2 are absent from runs made by retrace 0.1.0 (rules 1), which keep deciding as they did. */
export const TrainingSettingsSchema = z.object({
  /** Rules 1: every checkpoint comes after stepsPerEpoch steps. Rules 2: the longest gap between
   * checkpoints (checkpoints are spread over totalSteps as evenly as integers allow). */
  stepsPerEpoch: z.number().int().positive(),
  /** Budget in steps. Rules 1: stepsPerEpoch × checkpoints; rules 2: the step count closest to
   * trainingExamples × stopPoint / batchSize. */
  totalSteps: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  warmupSteps: z.number().int().nonnegative(),
  baseLr: z.number().positive(),
  minLr: z.number().positive(),
  lrFactor: z.number(),
  minDelta: z.number(),
  plateauPatience: z.number().int().positive(),
  cooldown: z.number().int().nonnegative(),
  earlyStopping: z.boolean(),
  earlyStopPatience: z.number().int().positive(),
  monitor: z.enum(['valLoss', 'valAccuracy']),
  /** Loss above this stops the run as diverged; null = off. */
  divergenceThreshold: z.number().nullable(),
  /** The rule version (absent = 1). See docs/architecture.md, "Rule versions". */
  rules: z.number().int().positive().optional(),
  /** Rules 2: epoch checkpoints in the whole schedule. */
  checkpoints: z.number().int().positive().optional(),
  /** Rules 2: ReduceLROnPlateau is a policy, off unless asked for (rules 1: always on). */
  reduceLrOnPlateau: z.boolean().optional(),
  /** Rules 2: where this run starts in a schedule it continues (a branch with no budget override
   * continues its parent's): schedule steps and epoch checkpoints done before its step 0. */
  scheduleOffset: z.object({ step: z.number().int().nonnegative(), checkpoints: z.number().int().nonnegative() }).optional(),
  /** Rules 2: warmup steps already done before step 0 (a branch inherits its parent's position). */
  warmupOffset: z.number().int().nonnegative().optional(),
  /** Rules 2: the plan a branch continuing its parent's schedule starts with (absent: checkpoints
   * 1..checkpoints spread over 0..totalSteps). */
  plan: SchedulePlanSchema.optional(),
  /** Rules 2: controller state a branch inherits from its parent (absent: a fresh start). */
  inherited: InheritedControllerSchema.optional(),
});
export type TrainingSettings = z.infer<typeof TrainingSettingsSchema>;
