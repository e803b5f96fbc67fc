// The machine's context as data: the zod schema a stored snapshot (checkpoint.committed.machine)
// is validated with when it is read back, beside the TrainingContext type it must equal (checked
// at compile time below, both ways, so neither can change alone). Floats that can be non-finite
// (a NaN evaluation, the Infinity metric of a start with no evaluation) are `snapshotFloat`: numbers
// in memory, {"$float": "NaN"} in the log, the form snapshots have always been stored in.
import { z } from 'zod';
import { CheckpointKindSchema, SchedulePlanSchema, snapshotFloat, StopReasonSchema, TrainingSettingsSchema } from './training.events.js';
import type { TrainingContext, TrainingStateName } from './training.machine.js';

const CheckpointRefSchema = z.object({ index: z.number().int().nonnegative(), step: z.number().int().nonnegative(), weightsHash: z.string() }).strict();
const ActiveStateSchema = z.enum(['warmup', 'training', 'plateau']);

export const TrainingContextSchema = z
  .object({
    settings: TrainingSettingsSchema,
    step: z.number().int().nonnegative(),
    examplesSeen: z.number().int().nonnegative(),
    lr: snapshotFloat,
    currentBaseLr: snapshotFloat,
    epochCheckpoints: z.number().int().nonnegative(),
    lastEval: z.object({ step: z.number().int().nonnegative(), valLoss: snapshotFloat, valAccuracy: snapshotFloat }).strict().nullable(),
    best: CheckpointRefSchema.extend({ metric: snapshotFloat }).strict().nullable(),
    lastCheckpoint: CheckpointRefSchema.extend({ kind: CheckpointKindSchema }).strict().nullable(),
    sinceImprovement: z.number().int().nonnegative(),
    plateauWait: z.number().int().nonnegative(),
    cooldownLeft: z.number().int().nonnegative(),
    improved: z.boolean(),
    stopReason: StopReasonSchema.nullable(),
    interruptedFrom: ActiveStateSchema.nullable(),
    exported: z.object({ checkpoint: z.number().int().nonnegative(), kind: CheckpointKindSchema.optional(), out: z.string() }).strict().nullable(),
    // Rules 2 only (absent from rules 1 contexts, which keep their old shape).
    plan: SchedulePlanSchema.optional(),
    bestMetric: snapshotFloat.nullable().optional(),
    interrupts: z.number().int().nonnegative().optional(),
  })
  .strict();

export const TRAINING_STATE_NAMES = ['idle', 'warmup', 'training', 'checkpointing', 'plateau', 'stopped', 'exported'] as const satisfies readonly TrainingStateName[];

/** A snapshot as data: what checkpoints store and `state --json` prints. */
export const PlainSnapshotSchema = z.object({ value: z.enum(TRAINING_STATE_NAMES), context: TrainingContextSchema }).strict();

// The schema and the type are the same shape (a compile error here means one changed alone).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const contextMatches: Same<z.output<typeof TrainingContextSchema>, TrainingContext> = true;
const statesMatch: Same<(typeof TRAINING_STATE_NAMES)[number], TrainingStateName> = true;
void contextMatches;
void statesMatch;
