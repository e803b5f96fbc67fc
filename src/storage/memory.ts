// The in-memory store: the storage seam's second implementation, for fast unit tests and for the
// library's throw-away runs. Nothing survives the process.
//
// A run is an array of records, each kept as the LevelDB store keeps it: `<crc> <canonical JSON>`
// (codec.ts), so a payload JSON cannot carry is rejected with the same TypeError and every read
// checks the same checksum. Blobs are a Map from SHA-256 to bytes.
//
// Durability is modelled as in the LevelDB store: an append is visible at once to every handle of
// this process; the committed mark (committedSeq, and the summary stored with it) advances on a
// sync append, flush-less close and nothing else.
//
// Ownership: one writer per run (a second openRun(id, 'write') throws RunLockedError). A writer
// can lose the run to takeOver(id), which models what a backend with leases does when an owner
// stops renewing: the run's fence is bumped, the new writer gets it, and every later append of the
// old writer throws RunFencedError — the fence is checked in every commit, as the interface asks
// of any backend whose ownership can be lost mid-run.
import { hostname } from 'node:os';
import { canonicalJson, decodeValue, encodeKey, encodeValue, type StoredRecord } from '../log/codec.js';
import { sha256Hex } from '../log/blobs.js';
import { CorruptBlobError, MissingBlobError, RunExistsError, RunLockedError, StoreError, UnknownRunError, type RunOwner } from '../log/errors.js';
import { INDEXED_TYPES } from '../log/events.js';
import { RUN_ID_RE } from '../log/store.js';
import {
  RunFencedError,
  WrongExpectedSeqError,
  type AppendInput,
  type AppendOptions,
  type BackwardRange,
  type BlobIntent,
  type BlobStore,
  type CreateRunOptions,
  type EventLog,
  type ReadRange,
  type RunStore,
  type StoredSummary,
  type StoreProblem,
  type SweepOptions,
  type SweepResult,
} from './types.js';

export interface MemoryStoreOptions {
  /** Record types readIndexed accepts (default INDEXED_TYPES). */
  indexedTypes?: readonly string[];
  /** The `v` written into appended records (default 1). */
  schemaVersion?: number;
}

interface RunState {
  id: string;
  parent: string | null;
  /** `<crc> <canonical json>` per seq. */
  values: string[];
  committed: number;
  fence: number;
  writer: MemoryLog | null;
  owner: RunOwner | null;
  summary: StoredSummary | null;
  /** Called after every append and commit (follow), and on removal. */
  listeners: Set<() => void>;
  removed: boolean;
}

/** Everything one named store holds; shared by every handle opened on that name. */
export class MemoryBackend {
  readonly runs = new Map<string, RunState>();
  readonly blobs = new Map<string, { bytes: Uint8Array; mtimeMs: number }>();
  readonly intents = new Set<MemoryIntent>();
}

function seqRange(a: number, b: number): string {
  return a === b ? `${a}` : `${a}..${b}`;
}

function checkSeqArg(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) || v === Infinity)) throw new RangeError(`${name} must be an integer, got ${v}`);
}

function notify(run: RunState): void {
  for (const l of [...run.listeners]) l();
}

class MemoryLog implements EventLog {
  private closed = false;
  private pending = 0;
  private summarizer: ((seq: number) => unknown) | null = null;

  constructor(
    private readonly run: RunState,
    readonly mode: 'read' | 'write',
    readonly fence: number,
    private readonly opts: Required<MemoryStoreOptions>,
    private readonly onClose: (log: MemoryLog) => void,
  ) {}

  get runId(): string {
    return this.run.id;
  }

  get pendingCount(): number {
    return this.pending;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private check(): void {
    if (this.closed) throw new Error(`run "${this.runId}": this log handle is closed`);
    if (this.run.removed) throw new UnknownRunError(this.runId, []);
  }

  private checkOwner(): void {
    if (this.mode !== 'write') throw new Error(`run "${this.runId}" is open for reading; open it with mode 'write' to append`);
    if (this.run.fence !== this.fence) throw new RunFencedError(this.runId, this.fence, this.run.fence);
  }

  async append(records: readonly AppendInput[], opts: AppendOptions): Promise<number[]> {
    this.check();
    this.checkOwner();
    if (!Array.isArray(records)) throw new TypeError('append() takes an array of records');
    const next = this.run.values.length;
    if (opts?.expectedSeq !== undefined) {
      if (!Number.isSafeInteger(opts.expectedSeq) || opts.expectedSeq < 0) throw new TypeError(`expectedSeq must be an integer ≥ 0, got ${String(opts.expectedSeq)}`);
      if (opts.expectedSeq !== next) throw new WrongExpectedSeqError(this.runId, opts.expectedSeq, next);
    }
    const now = new Date().toISOString();
    const values = records.map((r, i) => {
      if (r === null || typeof r !== 'object') throw new TypeError(`record ${i} is not an object`);
      if (typeof r.type !== 'string' || r.type.length === 0) throw new TypeError(`record ${i} has no type`);
      if (r.at !== undefined && (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at)))) {
        throw new TypeError(`record ${i} (${r.type}) has an "at" that is not an ISO time: ${String(r.at)}`);
      }
      return encodeValue({ v: this.opts.schemaVersion, seq: next + i, type: r.type, at: r.at ?? now, data: r.data }).value;
    });
    this.run.values.push(...values);
    const seqs = values.map((_, i) => next + i);
    if (opts?.sync === true) this.commit();
    else this.pending += values.length;
    notify(this.run);
    return seqs;
  }

  /** Advances the committed mark to the last record, with the summarizer's summary of it. */
  private commit(): void {
    this.pending = 0;
    const last = this.run.values.length - 1;
    if (last <= this.run.committed) return;
    this.run.committed = last;
    let summary: unknown = null;
    try {
      const s = this.summarizer?.(last);
      if (s !== null && s !== undefined) summary = JSON.parse(canonicalJson(s, 'summary'));
    } catch {
      summary = null;
    }
    this.run.summary = summary === null ? null : { seq: last, summary };
  }

  async flush(): Promise<void> {
    this.check();
    this.pending = 0;
  }

  private decode(seq: number): StoredRecord {
    const value = this.run.values[seq];
    if (value === undefined) throw new Error(`run "${this.runId}": event ${seq} is missing`);
    const r = decodeValue(this.runId, encodeKey(seq), value);
    return { v: r.v, seq: r.seq, type: r.type, at: r.at, data: r.data };
  }

  async *read(range: ReadRange = {}): AsyncIterable<StoredRecord> {
    this.check();
    checkSeqArg('from', range.from);
    checkSeqArg('to', range.to);
    const from = Math.max(0, range.from ?? 0);
    const hi = Math.min(range.to ?? Infinity, this.run.values.length - 1);
    for (let seq = from; seq <= hi; seq++) yield this.decode(seq);
  }

  async *readBackward(range: BackwardRange = {}): AsyncIterable<StoredRecord> {
    this.check();
    checkSeqArg('from', range.from);
    checkSeqArg('to', range.to);
    const hi = Math.min(range.from ?? Infinity, this.run.values.length - 1);
    const lo = Math.max(0, range.to ?? 0);
    for (let seq = hi; seq >= lo; seq--) yield this.decode(seq);
  }

  async *readIndexed(type: string, range: ReadRange = {}): AsyncIterable<StoredRecord> {
    this.check();
    if (!this.opts.indexedTypes.includes(type)) throw new TypeError(`record type ${JSON.stringify(type)} is not indexed (indexed: ${this.opts.indexedTypes.join(', ')})`);
    for await (const r of this.read(range)) if (r.type === type) yield r;
  }

  async get(seq: number): Promise<StoredRecord | undefined> {
    this.check();
    checkSeqArg('seq', seq);
    if (seq < 0 || seq >= this.run.values.length) return undefined;
    return this.decode(seq);
  }

  async getMany(seqs: readonly number[]): Promise<Array<StoredRecord | undefined>> {
    this.check();
    for (const seq of seqs) checkSeqArg('seq', seq);
    return seqs.map((seq) => (seq < 0 || seq >= this.run.values.length ? undefined : this.decode(seq)));
  }

  async lastSeq(): Promise<number> {
    this.check();
    return this.run.values.length - 1;
  }

  async committedSeq(): Promise<number> {
    this.check();
    return this.run.committed;
  }

  setSummarizer(summarize: ((seq: number) => unknown) | null): void {
    this.check();
    if (this.mode !== 'write') throw new Error(`run "${this.runId}" is open for reading; only its writer keeps its summary`);
    this.summarizer = summarize;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A writer that lost the run leaves it to the new one.
    if (this.mode === 'write' && !this.run.removed && this.run.fence === this.fence) {
      this.commit();
      notify(this.run);
    }
    this.onClose(this);
  }
}

class MemoryIntent implements BlobIntent {
  readonly hashes = new Set<string>();
  constructor(private readonly backend: MemoryBackend) {
    backend.intents.add(this);
  }
  async add(hashes: Iterable<string>): Promise<void> {
    for (const h of hashes) this.hashes.add(h);
    this.backend.intents.add(this);
  }
  async release(): Promise<void> {
    this.backend.intents.delete(this);
  }
}

const HASH_RE = /^[0-9a-f]{64}$/;

function checkHash(hash: string): void {
  if (!HASH_RE.test(hash)) throw new TypeError(`${JSON.stringify(hash)} is not a SHA-256 hash (64 lowercase hex digits)`);
}

export class MemoryBlobStore implements BlobStore {
  constructor(private readonly backend: MemoryBackend) {}

  intent(): BlobIntent {
    return new MemoryIntent(this.backend);
  }

  async put(bytes: Uint8Array, knownHash?: string, intent?: BlobIntent): Promise<string> {
    return (await this.putMany([bytes], knownHash === undefined ? undefined : [knownHash], intent))[0]!;
  }

  async putMany(items: readonly Uint8Array[], hashes?: ReadonlyArray<string | Promise<string>>, intent?: BlobIntent): Promise<string[]> {
    if (hashes !== undefined && hashes.length !== items.length) throw new TypeError('putMany: one hash per item');
    const names = await Promise.all(items.map((b, i) => hashes?.[i] ?? sha256Hex(b)));
    for (const h of names) checkHash(h);
    await intent?.add(names);
    const now = Date.now();
    for (const [i, h] of names.entries()) {
      const had = this.backend.blobs.get(h);
      // A copy: the caller may reuse its buffer.
      if (!had || Buffer.compare(had.bytes, items[i]!) !== 0) this.backend.blobs.set(h, { bytes: new Uint8Array(items[i]!), mtimeMs: now });
      else had.mtimeMs = now;
    }
    return names;
  }

  async get(hash: string): Promise<Uint8Array> {
    checkHash(hash);
    const b = this.backend.blobs.get(hash);
    if (!b) throw new MissingBlobError(hash);
    const actual = sha256Hex(b.bytes);
    if (actual !== hash) throw new CorruptBlobError(hash, actual);
    return new Uint8Array(b.bytes);
  }

  async has(hash: string): Promise<boolean> {
    checkHash(hash);
    return this.backend.blobs.has(hash);
  }

  async verify(hash: string): Promise<string | null> {
    try {
      await this.get(hash);
      return null;
    } catch (err) {
      if (err instanceof MissingBlobError || err instanceof CorruptBlobError) return err.message;
      throw err;
    }
  }

  async size(hash: string): Promise<number> {
    checkHash(hash);
    const b = this.backend.blobs.get(hash);
    if (!b) throw new MissingBlobError(hash);
    return b.bytes.byteLength;
  }

  allocatedBytes(hash: string): Promise<number> {
    return this.size(hash);
  }

  async list(): Promise<string[]> {
    return [...this.backend.blobs.keys()].sort();
  }

  /** The same two checks as the file store's sweep (live set and intents, before and after
   * choosing), so a blob named meanwhile is kept. */
  async sweep(opts: SweepOptions): Promise<SweepResult> {
    const held = (): Set<string> => new Set([...this.backend.intents].flatMap((i) => [...i.hashes]));
    const all = await this.list();
    const intents1 = held();
    const live1 = await opts.live();
    const now = opts.now ?? Date.now();
    const result: SweepResult = { deleted: [], bytesFreed: 0, kept: 0, keptYoung: [], keptIntent: [], restored: [], intents: this.backend.intents.size, staleIntentsRemoved: 0, otherHostIntents: [] };
    const candidates = all.filter((h) => {
      const b = this.backend.blobs.get(h);
      if (b === undefined || live1.has(h)) return false;
      if (intents1.has(h)) result.keptIntent.push(h);
      else if (now - b.mtimeMs < opts.graceMs) result.keptYoung.push(h);
      else return true;
      return false;
    });
    if (opts.dryRun) {
      for (const h of candidates) {
        result.deleted.push(h);
        result.bytesFreed += this.backend.blobs.get(h)!.bytes.byteLength;
      }
    } else {
      const intents2 = held();
      const live2 = await opts.live();
      for (const h of candidates) {
        const b = this.backend.blobs.get(h);
        if (!b) continue;
        if (intents2.has(h) || live2.has(h) || now - b.mtimeMs < opts.graceMs) {
          result.restored.push(h);
          continue;
        }
        this.backend.blobs.delete(h);
        result.deleted.push(h);
        result.bytesFreed += b.bytes.byteLength;
      }
    }
    result.kept = all.length - result.deleted.length;
    return result;
  }
}

/** A handle on a named in-memory store (openRunStore('memory:NAME')), or on a private one. */
export class MemoryRunStore implements RunStore {
  readonly kind = 'memory';
  readonly blobs: MemoryBlobStore;
  private readonly logs = new Set<MemoryLog>();
  private readonly opts: Required<MemoryStoreOptions>;
  private closed = false;

  constructor(
    readonly location = 'memory:',
    private readonly backend: MemoryBackend = new MemoryBackend(),
    opts: MemoryStoreOptions = {},
  ) {
    this.blobs = new MemoryBlobStore(backend);
    this.opts = { indexedTypes: opts.indexedTypes ?? INDEXED_TYPES, schemaVersion: opts.schemaVersion ?? 1 };
  }

  get indexedTypes(): readonly string[] {
    return this.opts.indexedTypes;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError(`the store ${this.location} is closed`, this.location);
  }

  private checkId(id: string): void {
    if (typeof id !== 'string' || !RUN_ID_RE.test(id)) {
      throw new StoreError(`invalid run id ${JSON.stringify(id)}: letters, digits, ".", "_" or "-", at most 100, not starting with "." "_" "-"`);
    }
  }

  private async runOf(id: string): Promise<RunState> {
    this.assertOpen();
    this.checkId(id);
    const run = this.backend.runs.get(id);
    if (!run) throw new UnknownRunError(id, await this.listRuns());
    return run;
  }

  /** Every run of an in-memory store is reachable. */
  async assertRunsReachable(_why: string): Promise<void> {
    this.assertOpen();
  }

  async listRuns(): Promise<string[]> {
    this.assertOpen();
    return [...this.backend.runs.keys()].sort();
  }

  async hasRun(id: string): Promise<boolean> {
    this.assertOpen();
    this.checkId(id);
    return this.backend.runs.has(id);
  }

  async isEmptyRun(id: string): Promise<boolean> {
    const run = this.backend.runs.get(id);
    return run !== undefined && run.values.length === 0 && run.committed < 0;
  }

  async createRun(id: string, opts: CreateRunOptions = {}): Promise<EventLog> {
    this.assertOpen();
    this.checkId(id);
    const had = this.backend.runs.get(id);
    if (had) {
      if (had.writer) throw new RunExistsError(id, null);
      if (!(await this.isEmptyRun(id))) throw new RunExistsError(id, null);
      had.parent = opts.parent ?? null; // an empty run whose creator is gone is reclaimed
      return this.openWriter(had);
    }
    const run: RunState = {
      id,
      parent: opts.parent ?? null,
      values: [],
      committed: -1,
      fence: 0,
      writer: null,
      owner: null,
      summary: null,
      listeners: new Set(),
      removed: false,
    };
    this.backend.runs.set(id, run);
    return this.openWriter(run);
  }

  private openWriter(run: RunState): MemoryLog {
    run.fence += 1;
    run.owner = { pid: process.pid, hostname: hostname(), command: 'in-memory', startedAt: new Date().toISOString() };
    const log = new MemoryLog(run, 'write', run.fence, this.opts, (l) => {
      this.logs.delete(l);
      if (run.writer === l) {
        run.writer = null;
        run.owner = null;
      }
    });
    run.writer = log;
    this.logs.add(log);
    return log;
  }

  async openRun(id: string, mode: 'read' | 'write'): Promise<EventLog> {
    if (mode !== 'write' && mode !== 'read') throw new TypeError(`mode must be 'write' or 'read', got ${String(mode)}`);
    const run = await this.runOf(id);
    if (mode === 'write') {
      if (run.writer) throw new RunLockedError(id, run.owner, true);
      return this.openWriter(run);
    }
    const log = new MemoryLog(run, 'read', 0, this.opts, (l) => this.logs.delete(l));
    this.logs.add(log);
    return log;
  }

  /**
   * Takes the run from its writer, as a backend with leases does when an owner stops renewing:
   * the fence is bumped and the returned writer holds the run; the old writer's appends throw
   * RunFencedError from now on.
   */
  async takeOver(id: string): Promise<EventLog> {
    const run = await this.runOf(id);
    return this.openWriter(run);
  }

  async removeRuns(ids: readonly string[]): Promise<void> {
    const runs: RunState[] = [];
    for (const id of ids) runs.push(await this.runOf(id));
    for (const run of runs) if (run.writer) throw new RunLockedError(run.id, run.owner, true);
    for (const run of runs) {
      this.backend.runs.delete(run.id);
      run.removed = true;
      notify(run);
    }
  }

  /** The run's writer (always this process), or null (none, or no such run: as for a folder). */
  async holder(id: string): Promise<RunOwner | null> {
    this.assertOpen();
    return this.backend.runs.get(id)?.owner ?? null;
  }

  /** Always null: an in-memory run's writer is in this process. */
  async liveWriter(): Promise<RunOwner | null> {
    this.assertOpen();
    return null;
  }

  async recordedParent(id: string): Promise<string | null | undefined> {
    this.assertOpen();
    return this.backend.runs.get(id)?.parent;
  }

  async readSummary(id: string): Promise<StoredSummary | null> {
    this.assertOpen();
    const s = this.backend.runs.get(id)?.summary;
    return s ? { seq: s.seq, summary: JSON.parse(JSON.stringify(s.summary)) as unknown } : null;
  }

  async changeToken(id: string): Promise<string> {
    this.assertOpen();
    const run = this.backend.runs.get(id);
    return run ? `${run.values.length}:${run.committed}:${run.fence}:${run.writer ? 'w' : ''}` : 'gone';
  }

  async *follow(id: string, from: number, signal: AbortSignal): AsyncIterable<StoredRecord> {
    const run = await this.runOf(id);
    let next = Math.max(0, from);
    while (!signal.aborted) {
      while (next < run.values.length) {
        if (signal.aborted) return;
        const r = decodeValue(id, encodeKey(next), run.values[next]!);
        next++;
        yield { v: r.v, seq: r.seq, type: r.type, at: r.at, data: r.data };
      }
      if (run.removed) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          run.listeners.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        run.listeners.add(done);
        signal.addEventListener('abort', done, { once: true });
        if (signal.aborted || next < run.values.length || run.removed) done();
      });
    }
  }

  async runBytes(id: string): Promise<{ allocated: number; content: number }> {
    const run = await this.runOf(id);
    const bytes = run.values.reduce((n, v) => n + Buffer.byteLength(v), 0);
    return { allocated: bytes, content: bytes };
  }

  /** Every record's checksum and key (one run), or every blob's hash (`null`). */
  async checkIntegrity(runId: string | null): Promise<StoreProblem[]> {
    this.assertOpen();
    const problems: StoreProblem[] = [];
    if (runId === null) {
      for (const h of await this.blobs.list()) {
        const p = await this.blobs.verify(h);
        if (p) problems.push({ runId: null, kind: 'blob', message: p });
      }
      return problems;
    }
    const run = await this.runOf(runId);
    for (const [seq, value] of run.values.entries()) {
      try {
        decodeValue(runId, encodeKey(seq), value);
      } catch (err) {
        problems.push({ runId, kind: 'record', seq, message: (err as Error).message });
      }
    }
    if (run.committed >= run.values.length) {
      problems.push({ runId, kind: 'sequence', seq: run.values.length, message: `run "${runId}": events ${seqRange(run.values.length, run.committed)} are missing` });
    }
    return problems;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const log of [...this.logs]) await log.close();
    this.closed = true;
  }
}
