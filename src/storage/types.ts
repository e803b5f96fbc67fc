// The storage seam: what retrace needs from a place that keeps runs. Every command, the library,
// the dashboard, fsck and gc talk to these interfaces only; an implementation owns its layout.
//
//   RunStore  the runs: create, list, open (one writer per run, fenced), remove, summaries,
//             following a run as it grows, byte-level integrity checks.
//   EventLog  one run's append-only log of records with gap-free seqs 0, 1, 2, ...
//   BlobStore content-addressed bytes (snapshot tensors), shared by every run of the store.
//
// Implementations: the LevelDB + files store (`src/log/`, the embedded default) and the in-memory
// store (`src/storage/memory.ts`, for fast tests). Both pass one contract suite
// (test/storage/contract.ts); a new backend passes it too (docs/architecture.md, "Adding a backend").
//
// The records are opaque here: a store validates its own framing (checksums, seqs), never the
// payloads (src/log/events.ts does, on every read, through one schema).
import type { RunOwner } from '../log/errors.js';

export type { RunOwner } from '../log/errors.js';

/** One record of a run's log, generic over its payload. */
export interface StoredRecord<T = unknown> {
  /** Schema version of the payload. */
  v: number;
  /** Position in the run's log: 0, 1, 2, ... without gaps. */
  seq: number;
  /** Event type, e.g. 'step.finished'. */
  type: string;
  /** ISO wall-clock time of the append; metadata only, never used for ordering. */
  at: string;
  data: T;
}

export interface AppendInput {
  type: string;
  data: unknown;
  /** ISO time; defaults to now. */
  at?: string;
}

export interface AppendOptions {
  /** Durable when the append resolves (and every earlier record with it); without, the records
   * may wait in memory until a later flush, sync append or close. */
  sync: boolean;
  /** The seq the first record must get (optimistic concurrency, as event stores' "expected
   * version"): a mismatch rejects the whole append with WrongExpectedSeqError and writes nothing. */
  expectedSeq?: number;
}

export interface ReadRange {
  /** First seq (inclusive), default 0. */
  from?: number;
  /** Last seq (inclusive), default the end of the log. */
  to?: number;
}

/** Reading backwards: from `from` (inclusive, default the last seq) down to `to` (default 0). */
export interface BackwardRange {
  from?: number;
  to?: number;
}

/**
 * The summary a writer keeps beside the committed mark (see EventLog.setSummarizer): opaque JSON
 * to the store, validated by its reader (src/run/summary.ts), and current only for `seq`.
 */
export interface StoredSummary {
  /** The seq the summary describes: the committed mark's seq when it was written. */
  seq: number;
  summary: unknown;
}

/**
 * One run's log, opened through RunStore.createRun/openRun. A 'read' log cannot append. A
 * 'write' log is the run's only writer anywhere (RunStore's ownership), identified by `fence`.
 *
 * Integrity: every record read is checked (checksum, seq = position); a range read is gap-free
 * or throws CorruptLogError naming the missing seqs; a log shorter than its committed mark, or
 * whose committed record was replaced, throws CorruptLogError on open or on the first read.
 * Implementations need not scan records nobody reads (that is RunStore.checkIntegrity's job).
 */
export interface EventLog {
  readonly runId: string;
  readonly mode: 'read' | 'write';
  /** The writer's fencing token: greater than every earlier writer's of this run; 0 for readers.
   * An implementation that can lose ownership checks it inside every commit. */
  readonly fence: number;
  /** Non-sync records appended but not yet written. */
  readonly pendingCount: number;
  readonly isClosed: boolean;

  /** Appends records with consecutive seqs and returns them (see AppendOptions). Throws
   * WrongExpectedSeqError, RunFencedError (ownership lost), TypeError (not a record, a payload
   * JSON cannot carry), Error (a read log). */
  append(records: readonly AppendInput[], opts: AppendOptions): Promise<number[]>;
  /** Writes buffered non-sync records (not durably). */
  flush(): Promise<void>;
  /** Records from..to in seq order, each verified; a writer sees its own buffered records. */
  read(range?: ReadRange): AsyncIterable<StoredRecord>;
  /** Records from `from` down to `to`, newest first, each verified (e.g. the last loss before a point). */
  readBackward(range?: BackwardRange): AsyncIterable<StoredRecord>;
  /**
   * Records of one of the store's indexed types (RunStoreOptions.indexedTypes) in seq order,
   * without reading the records between them: checkpoints, evaluations, resumes. Throws
   * TypeError for a type that is not indexed.
   */
  readIndexed(type: string, range?: ReadRange): AsyncIterable<StoredRecord>;
  /** One record, verified; undefined past the end. */
  get(seq: number): Promise<StoredRecord | undefined>;
  /** Several records by seq in one call (e.g. a chart's samples), each verified, in the order
   * asked; undefined for a seq past the end. */
  getMany(seqs: readonly number[]): Promise<Array<StoredRecord | undefined>>;
  /** The highest seq (-1 when empty), counting a writer's buffered records. */
  lastSeq(): Promise<number>;
  /** The last durably committed seq (-1 if none); a reader sees it as of opening. */
  committedSeq(): Promise<number>;
  /**
   * A writer's source of the run's summary: called whenever the committed mark advances, with
   * the mark's seq; what it returns (JSON) is stored with the mark, atomically, and handed out by
   * RunStore.readSummary. It returns null when it cannot describe exactly that seq (the mark is
   * then written without a summary and readers fall back to reading the log).
   */
  setSummarizer(summarize: ((seq: number) => unknown) | null): void;
  /** Closes the handle; a writer first makes everything appended durable. Idempotent. */
  close(): Promise<void>;
}

export interface CreateRunOptions {
  /** The parent run's id for a branch; null or missing: not a branch. Recorded before the first
   * event, so a branch stays known as one even when its log cannot be read. */
  parent?: string | null;
}

/** A problem found by a byte-level check (fsck); `file` is relative to the store's location. */
export interface StoreProblem {
  runId: string | null;
  kind: string;
  file?: string;
  seq?: number;
  message: string;
}

export interface RunStore {
  /** 'leveldb', 'memory', ... */
  readonly kind: string;
  /** Where the store is, as a user would name it (a folder, a URL): for messages and `--json`. */
  readonly location: string;
  readonly blobs: BlobStore;
  /** The record types EventLog.readIndexed accepts (default INDEXED_TYPES, src/log/events.ts). */
  readonly indexedTypes: readonly string[];

  /** Run ids, sorted. */
  listRuns(): Promise<string[]>;
  /**
   * Throws StoreError (its message ending with `why`) when a run exists that listRuns cannot
   * reach, e.g. a run folder linked to a disk that is not mounted: gc and du call it first, so
   * such a run's blobs are never taken for unreferenced. A backend without such runs returns.
   */
  assertRunsReachable(why: string): Promise<void>;
  hasRun(id: string): Promise<boolean>;
  /** True when the run exists but nothing was ever committed to it and its log is empty (what a
   * creator killed before its first durable event leaves; createRun reclaims it). */
  isEmptyRun(id: string): Promise<boolean>;
  /** Creates a run and opens it for writing. RunExistsError if it exists (an empty run whose
   * creator is gone is reclaimed). */
  createRun(id: string, opts?: CreateRunOptions): Promise<EventLog>;
  /** Opens a run. 'write' takes ownership (RunLockedError naming the holder if another writer
   * has it); 'read' works while another process writes it and never blocks that writer.
   * UnknownRunError if there is no such run. */
  openRun(id: string, mode: 'read' | 'write'): Promise<EventLog>;
  /** Removes runs as one step: all or, if a precondition fails for any, none (UnknownRunError,
   * RunLockedError). Their blobs stay until a sweep. */
  removeRuns(ids: readonly string[]): Promise<void>;
  /** The writer holding the run (this process included) if it is alive, else null. */
  holder(id: string): Promise<RunOwner | null>;
  /** The writer holding the run if it is another live process, else null. */
  liveWriter(id: string): Promise<RunOwner | null>;
  /** The parent recorded at creation: an id, null (no parent), undefined (not recorded). */
  recordedParent(id: string): Promise<string | null | undefined>;
  /** The summary stored with the run's committed mark (EventLog.setSummarizer), or null when there
   * is none. Cheap: no log is opened. */
  readSummary(id: string): Promise<StoredSummary | null>;
  /** A token that changes whenever the run's log or marks change (for caches); cheap. */
  changeToken(id: string): Promise<string>;
  /**
   * The run's records from `from` on, as they are appended (by this or another process), until
   * `signal` aborts. Ends with the records so far if the run is removed.
   */
  follow(id: string, from: number, signal: AbortSignal): AsyncIterable<StoredRecord>;
  /** Bytes the run takes outside the blobs (its log and marks): `allocated` on its medium (for
   * files, their blocks: what `du` says), `content` what they hold. UnknownRunError. */
  runBytes(id: string): Promise<{ allocated: number; content: number }>;
  /** Byte-level checks of the implementation's own files or tables (fsck): of one run, or of the
   * store itself (`null`: its metadata and every blob). Never modifies anything. */
  checkIntegrity(runId: string | null): Promise<StoreProblem[]>;
  close(): Promise<void>;
}

/** A writer's promise that the blobs of an event it is about to append are wanted: a sweep keeps
 * every blob an unreleased intent names (and whose writer lives). */
export interface BlobIntent {
  add(hashes: Iterable<string>): Promise<void>;
  release(): Promise<void>;
}

export interface SweepOptions {
  /** Every blob some run still references, computed after the sweep has marked its candidates
   * (and again before each deletion is final), so a blob referenced meanwhile is kept. */
  live: () => Promise<ReadonlySet<string>>;
  /** Blobs written or touched more recently than this are kept (ms). */
  graceMs: number;
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** The clock, ms since the epoch (default Date.now()). */
  now?: number;
  /** Tests only: awaited before each step of the sweep (the points are the implementation's). */
  pause?: (point: string) => Promise<void> | void;
}

export interface SweepResult {
  deleted: string[];
  bytesFreed: number;
  kept: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  keptYoung: string[];
  /** Unreferenced blobs kept because a writer's intent names them. */
  keptIntent: string[];
  /** Blobs chosen for deletion, then kept because an intent or a run named them by the second check. */
  restored: string[];
  /** Live intents seen. */
  intents: number;
  /** Intents of writers that died, removed. */
  staleIntentsRemoved: number;
  /** Intents written on other hosts (never judged stale; their blobs are kept). */
  otherHostIntents: Array<{ file: string; host: string; pid: number; runId: string | null; startedAt: string }>;
}

export interface BlobStore {
  /** Stores bytes under their SHA-256 (hex) and resolves once durable; idempotent. */
  put(bytes: Uint8Array, knownHash?: string, intent?: BlobIntent): Promise<string>;
  /** put() of each as one group commit, hashes in input order. */
  putMany(items: readonly Uint8Array[], hashes?: ReadonlyArray<string | Promise<string>>, intent?: BlobIntent): Promise<string[]>;
  /** A new intent (see BlobIntent); release it once the event naming the blobs is durable. */
  intent(runId?: string | null): BlobIntent;
  /** The bytes, verified against the hash (MissingBlobError, CorruptBlobError, UnreadableBlobError). */
  get(hash: string): Promise<Uint8Array>;
  has(hash: string): Promise<boolean>;
  /** Re-hashes the stored bytes: null when whole, else the problem in one line. */
  verify(hash: string): Promise<string | null>;
  /** Content bytes of a blob (MissingBlobError). */
  size(hash: string): Promise<number>;
  /** Bytes the blob takes on its medium (allocated blocks for files). */
  allocatedBytes(hash: string): Promise<number>;
  /** Every stored hash, sorted. */
  list(): Promise<string[]>;
  /** Deletes the blobs no run references (gc), safe against writers putting blobs meanwhile. */
  sweep(opts: SweepOptions): Promise<SweepResult>;
}

/** An append whose expectedSeq is not the log's next seq: another append came first. */
export class WrongExpectedSeqError extends Error {
  override name = 'WrongExpectedSeqError';
  constructor(
    readonly runId: string,
    readonly expectedSeq: number,
    readonly actualSeq: number,
  ) {
    super(`run ${runId}: append expected to write event ${expectedSeq} but the log's next event is ${actualSeq}; read the log again before appending`);
  }
}

/** A writer whose ownership was taken over (its fence is stale): nothing it appends is accepted. */
export class RunFencedError extends Error {
  override name = 'RunFencedError';
  constructor(
    readonly runId: string,
    readonly fence: number,
    readonly current: number,
  ) {
    super(`run ${runId}: this writer (fence ${fence}) lost the run to a newer writer (fence ${current}); nothing more is appended by it`);
  }
}
