// The event log's schema (docs/event-log.md): every record a run's log can hold, as one
// discriminated union, validated on read. Version 1. A future version bump must come with an
// upgrade function from the old shape (see `upgradeRecord`), never a silent reinterpretation.
import { z } from 'zod';
import type { TrainingEvent } from '../../machines/training.events.js';
import { canonicalJson } from './codec.js';
import { SchemaVersionError } from './errors.js';
import { blobOf, withoutPack } from './packs.js';

export const SCHEMA_VERSION = 1;

/** JSON cannot hold NaN or ±Infinity; a diverged step's loss must still be logged exactly. */
export const FloatSchema = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
export type LoggedFloat = z.infer<typeof FloatSchema>;
export function encodeFloat(x: number): LoggedFloat {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return 'Infinity';
  if (x === Number.NEGATIVE_INFINITY) return '-Infinity';
  return x;
}
export function decodeFloat(x: LoggedFloat): number {
  return typeof x === 'number' ? x : Number(x);
}

export const TensorRefSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.enum(['float32', 'int32']),
  /** SHA-256 of the raw bytes: the blob's address. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  /** Where the bytes are when the tensor is packed with the other small tensors of its checkpoint
   * (packs.ts): the pack blob and the byte offset in it. Absent: the tensor is its own blob
   * (large tensors, and every tensor of logs written before packs). */
  pack: z.object({ hash: z.string().regex(/^[0-9a-f]{64}$/), offset: z.number().int().nonnegative() }).optional(),
});
export type TensorRef = z.infer<typeof TensorRefSchema>;

const SettingsSchema = z.object({
  stepsPerEpoch: z.number().int().positive(),
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
  divergenceThreshold: z.number().nullable(),
  // Rules 2 (absent in runs made by retrace 0.1.0, which decide by rules 1): see TrainingSettings.
  rules: z.number().int().positive().optional(),
  checkpoints: z.number().int().positive().optional(),
  reduceLrOnPlateau: z.boolean().optional(),
  scheduleOffset: z.object({ step: z.number().int().nonnegative(), checkpoints: z.number().int().nonnegative() }).optional(),
  warmupOffset: z.number().int().nonnegative().optional(),
  plan: z
    .object({ fromStep: z.number().int().nonnegative(), fromCheckpoint: z.number().int().nonnegative(), toStep: z.number().int().positive(), toCheckpoint: z.number().int().positive() })
    .optional(),
  inherited: z
    .object({
      currentBaseLr: z.number().positive(),
      sinceImprovement: z.number().int().nonnegative(),
      plateauWait: z.number().int().nonnegative(),
      cooldownLeft: z.number().int().nonnegative(),
      // A non-finite best (a run diverged from its start) is inherited as null: no best yet.
      bestMetric: z.number().nullable(),
    })
    .optional(),
});

const BackendInfoSchema = z.object({
  name: z.enum(['wasm', 'cpu', 'tensorflow']),
  version: z.string(),
  tfjsVersion: z.string(),
  threads: z.number().int().positive(),
});

export const ParentSchema = z.object({
  runId: z.string(),
  /** The point as the user wrote it (e.g. `ckpt:3`, `step:120`, `best`). */
  point: z.string(),
  /** The parent's event the branch starts from (a checkpoint, or the step replayed to). */
  seq: z.number().int().nonnegative(),
  step: z.number().int().nonnegative(),
});

/**
 * The exact state a run starts from (its weights and optimizer slots as blobs, durable before the
 * run.created naming them): the seeded initialisation, a branch point's state or an init-from
 * model. Resume of a run with no committed checkpoint restores it, never a fresh initialisation,
 * and fsck checks that checkpoint 0 equals it. Absent in logs written before it existed.
 */
export const StartStateSchema = z.object({
  weightsHash: z.string().regex(/^[0-9a-f]{64}$/),
  weights: z.array(TensorRefSchema),
  optimizer: z.array(TensorRefSchema),
});
export type StartState = z.infer<typeof StartStateSchema>;
/** A file a run depends on, as resolved when the run was created: later commands find it from
 * any folder, and a moved copy is accepted when its fingerprint matches. */
const RecordedFileSchema = z.object({
  /** What was typed (e.g. `csv:data/train.csv`). */
  spec: z.string(),
  /** Absolute path, resolved against the creating command's folder. */
  path: z.string(),
  /** The data set's fingerprint, the module source's SHA-256, or the initial model's weightsHash. */
  fingerprint: z.string(),
});

export const RunFilesSchema = z.object({
  dataset: RecordedFileSchema.optional(),
  model: RecordedFileSchema.optional(),
  initFrom: RecordedFileSchema.optional(),
});

const RunCreatedSchema = z.object({
  schemaVersion: z.number().int().positive(),
  /** The machine's rule version the run was made with; absent = 1 (retrace 0.1.0). */
  rules: z.number().int().positive().optional(),
  runId: z.string(),
  retraceVersion: z.string(),
  nodeVersion: z.string(),
  /** The fully resolved config: every default filled in. */
  config: z.record(z.string(), z.unknown()),
  settings: SettingsSchema,
  schedule: z.object({
    batchSize: z.number(),
    trainingExamples: z.number(),
    stopPoint: z.number(),
    checkpoints: z.number(),
    stepsPerEpoch: z.number(),
    totalSteps: z.number(),
    warmupSteps: z.number(),
    /** Rules 2: trainingExamples × stopPoint / checkpoints, the examples between two checkpoints. */
    examplesPerEpoch: z.number().optional(),
  }),
  seed: z.number().int(),
  backend: BackendInfoSchema,
  dataset: z.object({
    name: z.string(),
    fingerprint: z.string(),
    inputShape: z.array(z.number()),
    numClasses: z.number().int(),
    classNames: z.array(z.string()),
    /** Feature names in input order; absent in logs written before it was recorded. */
    featureNames: z.array(z.string()).nullable().optional(),
    trainSize: z.number().int(),
    valSize: z.number().int(),
  }),
  model: z.object({
    spec: z.string(),
    /** tfjs Layers topology (model.toJSON), so the architecture is in the log. */
    topology: z.unknown(),
    /** SHA-256 of a user module's source, null for built-in models. */
    sourceHash: z.string().nullable(),
    variables: z.array(z.object({ name: z.string(), shape: z.array(z.number()), trainable: z.boolean() })),
  }),
  optimizer: z.string(),
  parent: ParentSchema.nullable(),
  /** Absolute offsets of this run's streams: a branch continues its parent's data cursor and step keys. */
  origin: z.object({ step: z.number().int().nonnegative(), examplesSeen: z.number().int().nonnegative() }),
  start: StartStateSchema.optional(),
  /** The files the run depends on (absent in logs written before they were recorded: their paths
   * are then resolved against the current folder, as they were typed). */
  files: RunFilesSchema.optional(),
  /** Rules 2, branches: the config keys the branch overrode, and whether it continues its parent's
   * schedule (no budget override) or starts a fresh one; the inherited values are in settings. */
  inheritance: z
    .object({
      overridden: z.array(z.string()),
      schedule: z.enum(['continued', 'fresh']),
      controller: z.array(z.string()),
    })
    .optional(),
});

const StepFinishedSchema = z.object({
  step: z.number().int().positive(),
  loss: FloatSchema,
  lr: z.number(),
  examplesSeen: z.number().int().nonnegative(),
  weightsFinite: z.boolean().optional(),
});

const EvalFinishedSchema = z.object({
  step: z.number().int().nonnegative(),
  valLoss: FloatSchema,
  valAccuracy: z.number(),
});

const MachineSnapshotSchema = z.object({ value: z.string(), context: z.record(z.string(), z.unknown()) });

const CheckpointCommittedSchema = z.object({
  kind: z.enum(['initial', 'epoch', 'interrupt']),
  index: z.number().int().nonnegative(),
  step: z.number().int().nonnegative(),
  weightsHash: z.string(),
  examplesSeen: z.number().int().nonnegative(),
  weights: z.array(TensorRefSchema),
  optimizer: z.array(TensorRefSchema),
  optimizerKind: z.string(),
  /** The machine's snapshot after this event: lets `state --at` and resume skip folding from 0. */
  machine: MachineSnapshotSchema,
});

const StopRequestedSchema = z.object({ source: z.enum(['signal', 'api']) });
const RunResumedSchema = z.object({});
const ExportFinishedSchema = z.object({
  /** The checkpoint exported; for a step between checkpoints, the one re-executed from. */
  checkpoint: z.number().int().nonnegative(),
  /** Rules 2: the kind of checkpoint exported (`int:N` and `ckpt:K` share numbers). */
  kind: z.enum(['initial', 'epoch', 'interrupt']).optional(),
  out: z.string(),
  /** The step whose weights were exported (absent in older logs: the checkpoint's step). */
  step: z.number().int().nonnegative().optional(),
  /** The point as given (`best`, `ckpt:3`, `step:120`; absent in older logs). */
  point: z.string().optional(),
});
const RunExtendedSchema = z.object({
  /** The run's new stopPoint and checkpoint count (the whole schedule's), and the step budget they give. */
  stopPoint: z.number().positive(),
  checkpoints: z.number().int().positive(),
  totalSteps: z.number().int().positive(),
});

const StateChangedSchema = z.object({
  from: z.string(),
  to: z.string(),
  /** The seq of the event that caused the transition. */
  cause: z.number().int().nonnegative(),
  causeType: z.string(),
});

const SnapshotTakenSchema = z.object({
  step: z.number().int().nonnegative(),
  weightsHash: z.string(),
  weights: z.array(TensorRefSchema),
});

const ProcessAttachedSchema = z.object({
  pid: z.number().int(),
  hostname: z.string(),
  command: z.string(),
  backend: BackendInfoSchema,
  /** For resume: the checkpoint it restarted from and how many logged events it re-verified. */
  fromSeq: z.number().int().nullable(),
  /** Set when the process runs on a backend other than the recorded one: exactness is not promised. */
  backendMismatch: z.string().nullable(),
});

const RunForcedSchema = z.object({
  /** What differed from the recorded run and was accepted with --force. */
  differences: z.array(z.string()),
});

/** Every record type, its payload schema, and whether the machine consumes it. */
export const RECORD_SCHEMAS = {
  'run.created': RunCreatedSchema,
  'step.finished': StepFinishedSchema,
  'eval.finished': EvalFinishedSchema,
  'checkpoint.committed': CheckpointCommittedSchema,
  'stop.requested': StopRequestedSchema,
  'run.resumed': RunResumedSchema,
  'export.finished': ExportFinishedSchema,
  'run.extended': RunExtendedSchema,
  'state.changed': StateChangedSchema,
  'snapshot.taken': SnapshotTakenSchema,
  'process.attached': ProcessAttachedSchema,
  'run.forced': RunForcedSchema,
} as const;

export type RecordType = keyof typeof RECORD_SCHEMAS;
export type RecordData<T extends RecordType> = z.infer<(typeof RECORD_SCHEMAS)[T]>;

export type RunCreated = RecordData<'run.created'>;
export type CheckpointData = RecordData<'checkpoint.committed'>;
export type ProcessAttached = RecordData<'process.attached'>;
export type MachineSnapshotData = z.infer<typeof MachineSnapshotSchema>;
export type Parent = z.infer<typeof ParentSchema>;
export type RunFiles = z.infer<typeof RunFilesSchema>;

/** A record as read from the log: the store's envelope plus a validated, typed payload. */
export type LogRecord = {
  [T in RecordType]: { v: number; seq: number; type: T; at: string; data: RecordData<T> };
}[RecordType];

export type NewRecord = {
  [T in RecordType]: { type: T; data: RecordData<T> };
}[RecordType];

export class SchemaError extends Error {
  override name = 'SchemaError';
}

/** Validates a stored record's payload against its type's schema. */
export function parseRecord(runId: string, raw: { v: number; seq: number; type: string; at: string; data: unknown }): LogRecord {
  if (raw.v > SCHEMA_VERSION) throw new SchemaVersionError(runId, raw.seq, raw.v, SCHEMA_VERSION);
  const upgraded = upgradeRecord(raw);
  const schema = (RECORD_SCHEMAS as Record<string, z.ZodType>)[upgraded.type];
  if (!schema) throw new SchemaError(`run ${runId}: event ${raw.seq} has unknown type "${raw.type}"`);
  const parsed = schema.safeParse(upgraded.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SchemaError(`run ${runId}: event ${raw.seq} (${raw.type}) is malformed: ${issue.path.join('.') || 'data'}: ${issue.message}`);
  }
  return { ...upgraded, data: parsed.data } as LogRecord;
}

/** The hook for reading old logs: each past version maps to the current shape here. */
export function upgradeRecord<R extends { v: number }>(raw: R): R {
  // Version 1 is the only version so far.
  return raw;
}

/** The machine event a record carries, or null for records the machine does not consume. */
export function toMachineEvent(record: LogRecord): TrainingEvent | null {
  switch (record.type) {
    case 'step.finished':
      return { type: 'step.finished', ...record.data, loss: decodeFloat(record.data.loss) };
    case 'eval.finished':
      return { type: 'eval.finished', ...record.data, valLoss: decodeFloat(record.data.valLoss) };
    case 'checkpoint.committed': {
      const d = record.data;
      return { type: 'checkpoint.committed', kind: d.kind, index: d.index, step: d.step, weightsHash: d.weightsHash };
    }
    case 'stop.requested':
      return { type: 'stop.requested', source: record.data.source };
    case 'run.resumed':
      return { type: 'run.resumed' };
    case 'export.finished':
      return { type: 'export.finished', checkpoint: record.data.checkpoint, ...(record.data.kind ? { kind: record.data.kind } : {}), out: record.data.out };
    case 'run.extended':
      return { type: 'run.extended', stopPoint: record.data.stopPoint, checkpoints: record.data.checkpoints, totalSteps: record.data.totalSteps };
    case 'run.created':
    case 'state.changed':
    case 'snapshot.taken':
    case 'process.attached':
    case 'run.forced':
      return null;
    default: {
      const exhaustive: never = record;
      return exhaustive;
    }
  }
}

/** The only record types that name blobs (blobRefs of any other is empty): gc reads these
 * through the type index, so a type added here must be indexed (INDEXED_TYPES). */
export const BLOB_TYPES: readonly string[] = ['run.created', 'checkpoint.committed', 'snapshot.taken'];

/** Blob hashes a record references (checkpoints and snapshots): what gc must keep. A packed
 * tensor's own hash names no blob: its pack's does. Each hash once, in first-seen order. */
export function blobRefs(record: { type: string; data: unknown }): string[] {
  return [...new Set(tensorRefsOf(record).map(blobOf))];
}

/** Every TensorRef a record holds: run.created's start state, a checkpoint's or snapshot's tensors. */
function tensorRefsOf(record: { type: string; data: unknown }): TensorRef[] {
  if (record.type === 'run.created') {
    const start = (record.data as { start?: StartState }).start;
    return start ? [...start.weights, ...start.optimizer] : [];
  }
  if (record.type !== 'checkpoint.committed' && record.type !== 'snapshot.taken') return [];
  const d = record.data as { weights?: TensorRef[]; optimizer?: TensorRef[] };
  return [...(d.weights ?? []), ...(d.optimizer ?? [])];
}

/** A record's facts: where its tensors are stored (packed or not) is not one, so a log written
 * before packs verifies against a re-execution that packs. */
function factsOf(record: { type: string; data: unknown }): unknown {
  if (record.type !== 'checkpoint.committed' && record.type !== 'snapshot.taken') return record.data;
  const d = record.data as { weights?: TensorRef[]; optimizer?: TensorRef[] };
  return {
    ...d,
    ...(d.weights ? { weights: d.weights.map(withoutPack) } : {}),
    ...(d.optimizer ? { optimizer: d.optimizer.map(withoutPack) } : {}),
  };
}

/** Fields compared when a re-executed step meets an event already in the log (wall clock excluded). */
export function sameFacts(a: { type: string; data: unknown }, b: { type: string; data: unknown }): boolean {
  return a.type === b.type && canonicalJson(factsOf(a)) === canonicalJson(factsOf(b));
}

/**
 * The record types a store indexes by type (EventLog.readIndexed): every type except the one a run
 * writes at every step (`step.finished`), so a reader finds run.created, the checkpoints,
 * evaluations, transitions, resumes and snapshots without reading the steps between them.
 */
export const INDEXED_TYPES: readonly string[] = Object.keys(RECORD_SCHEMAS).filter((t) => t !== 'step.finished');
