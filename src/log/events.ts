// The event log's schema (docs/event-log.md): every record a run's log can hold, as one
// discriminated union, validated on read. The machine's inputs are defined once, in
// machines/training.events.ts; their records here are those payloads (plus, for a checkpoint, the
// tensors and stored snapshot). Floats the schema marks (`loggedFloat`) are numbers in memory and
// written as "NaN"/"Infinity"/"-Infinity" only by `encodeRecordData`, the one place a payload is
// turned into what the log stores; `canonicalJson` stays strict. The version and the upcasters
// of old versions live in schema-version.ts.
import { z } from 'zod';
import {
  CheckpointCommittedData,
  EvalFinishedData,
  ExportFinishedData,
  RunExtendedData,
  RunResumedData,
  StepFinishedData,
  StopRequestedData,
  TrainingSettingsSchema,
} from '../../machines/training.events.js';
import { PlainSnapshotSchema } from '../../machines/training.context.js';
import { RecordedConfigSchema } from '../config.js';
import { canonicalJson } from './codec.js';
import { SchemaVersionError } from './errors.js';
import { blobOf, withoutPack } from './packs.js';
import { SCHEMA_VERSION, upcast } from './schema-version.js';

export { SCHEMA_VERSION } from './schema-version.js';

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

const SettingsSchema = TrainingSettingsSchema;

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
  config: RecordedConfigSchema,
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

const StepFinishedSchema = StepFinishedData;
const EvalFinishedSchema = EvalFinishedData;

/** A machine snapshot as stored: its state name and its context, validated (machines/training.context.ts). */
const MachineSnapshotSchema = PlainSnapshotSchema;

const CheckpointCommittedSchema = CheckpointCommittedData.extend({
  examplesSeen: z.number().int().nonnegative(),
  weights: z.array(TensorRefSchema),
  optimizer: z.array(TensorRefSchema),
  optimizerKind: z.string(),
  /** The machine's snapshot after this event: lets `state --at` and resume skip folding from 0. */
  machine: MachineSnapshotSchema,
});

const StopRequestedSchema = StopRequestedData;
const RunResumedSchema = RunResumedData;
const ExportFinishedSchema = ExportFinishedData.extend({
  /** The step whose weights were exported (absent in older logs: the checkpoint's step). */
  step: z.number().int().nonnegative().optional(),
  /** The point as given (`best`, `ckpt:3`, `step:120`; absent in older logs). */
  point: z.string().optional(),
});
const RunExtendedSchema = RunExtendedData;

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
/** A record's payload in memory (floats are numbers, NaN included). */
export type RecordData<T extends RecordType> = z.output<(typeof RECORD_SCHEMAS)[T]>;

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

/** Validates a stored record's payload against its type's schema, after upcasting it from the
 * version it was written with (schema-version.ts). Throws SchemaVersionError for a version newer
 * than this release's, SchemaError naming run, seq and field for anything malformed. */
export function parseRecord(runId: string, raw: { v: number; seq: number; type: string; at: string; data: unknown }): LogRecord {
  if (raw.v > SCHEMA_VERSION) throw new SchemaVersionError(runId, raw.seq, raw.v, SCHEMA_VERSION);
  const schema = (RECORD_SCHEMAS as Record<string, z.ZodType>)[raw.type];
  if (!schema) throw new SchemaError(`run ${runId}: event ${raw.seq} has unknown type "${raw.type}"`);
  let data: unknown;
  try {
    data = upcast(raw.type, raw.v, raw.data);
  } catch (err) {
    throw new SchemaError(`run ${runId}: event ${raw.seq} (${raw.type}) cannot be read: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SchemaError(`run ${runId}: event ${raw.seq} (${raw.type}) is malformed: ${issue.path.join('.') || 'data'}: ${issue.message}`);
  }
  return { ...raw, v: SCHEMA_VERSION, data: parsed.data } as LogRecord;
}

/** parseRecord of a record that must be of `type` (read through that type's index): SchemaError
 * when it is another. */
export function parseRecordOf<T extends RecordType>(runId: string, raw: { v: number; seq: number; type: string; at: string; data: unknown }, type: T): Extract<LogRecord, { type: T }> {
  const record = parseRecord(runId, raw);
  if (record.type !== type) throw new SchemaError(`run ${runId}: event ${raw.seq} is a ${record.type}, where a ${type} was read`);
  return record as Extract<LogRecord, { type: T }>;
}

/**
 * A payload as the log stores it: the schema's encoding, where the floats it marks turn into their
 * stored form (NaN → "NaN"). The bytes are those every release wrote. A payload holding a
 * non-finite number goes through the schema's encoder, which throws SchemaError naming the field
 * when that number is not in a declared float (a NaN learning rate is never written); any other
 * value JSON cannot carry is refused by canonicalJson when the record is encoded.
 */
export function encodeRecordData(record: { type: string; data: unknown }): unknown {
  const schema = (RECORD_SCHEMAS as Record<string, z.ZodType>)[record.type];
  if (!schema) throw new SchemaError(`no record type "${record.type}"`);
  // The float codecs write a finite number as itself, so a payload without a non-finite number is
  // its own encoding: the hot path (a step) skips zod's encoder, ~5× slower than this scan.
  if (allFinite(record.data)) return record.data;
  const encoded = z.safeEncode(schema, record.data as never);
  if (!encoded.success) {
    const issue = encoded.error.issues[0]!;
    throw new SchemaError(`a ${record.type} record is malformed: ${issue.path.join('.') || 'data'}: ${issue.message}`);
  }
  return encoded.data;
}

/** Whether every number in a JSON-like value is finite. */
function allFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (const v of value) if (!allFinite(v)) return false;
    return true;
  }
  for (const k in value) if (!allFinite((value as Record<string, unknown>)[k])) return false;
  return true;
}

/** A machine snapshot as a checkpoint stores it (non-finite floats as {"$float": "NaN"}). */
export function encodeStoredSnapshot(plain: MachineSnapshotData): unknown {
  return z.encode(MachineSnapshotSchema, plain);
}

/** A record as the log stores it: its payload encoded (see encodeRecordData). For the log, and for
 * JSON a reader sends on (`log --json`): JSON has no NaN, so floats go in their stored form ("NaN"),
 * never as null. */
export function encodeRecord<R extends { type: string; data: unknown }>(record: R): Omit<R, 'data'> & { data: unknown } {
  return { ...record, data: encodeRecordData(record) };
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

/** Fields compared when a re-executed step meets an event already in the log (wall clock
 * excluded): the bytes their payloads are stored as, so NaN equals NaN and nothing else differs. */
export function sameFacts(a: { type: string; data: unknown }, b: { type: string; data: unknown }): boolean {
  return a.type === b.type && canonicalJson(encodeRecordData({ type: a.type, data: factsOf(a) })) === canonicalJson(encodeRecordData({ type: b.type, data: factsOf(b) }));
}

/** A record's payload as the canonical JSON the log stores. */
export function canonicalRecordData(record: { type: string; data: unknown }): string {
  return canonicalJson(encodeRecordData(record));
}

/**
 * The record types a store indexes by type (EventLog.readIndexed): every type except the one a run
 * writes at every step (`step.finished`), so a reader finds run.created, the checkpoints,
 * evaluations, transitions, resumes and snapshots without reading the steps between them.
 */
export const INDEXED_TYPES: readonly string[] = Object.keys(RECORD_SCHEMAS).filter((t) => t !== 'step.finished');
