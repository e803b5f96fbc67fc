// One run's append-only event log in its own LevelDB (see store.ts for how it is opened).
//
// Writing: append() gives records consecutive seqs (0, 1, 2, ...) in call order; all writes go
// through one queue, each as one atomic db.batch. A non-sync append is BUFFERED in memory and
// written later as one batch — when 256 records are pending (that append then waits for the
// batch), on the next sync append (the buffer is written first, in order, in the same batch), on
// flush() and on close(). Per-step events need not be durable: after a crash, steps after the last
// durable checkpoint are re-executed. A sync append writes with { sync: true } and then records
// its last seq in committed.json (tmp file + fsync + rename + fsync dir). close() also writes the
// buffer with { sync: true } and advances committed.json, so everything a clean close leaves is
// committed.
//
// Reading: a writer's own reads (read, get, lastSeq) see its buffered records: read() and get()
// flush the buffer (without sync) first, lastSeq() counts it.
//
// Integrity, on every read: each record's checksum and that its seq is its key's (codec.ts); that
// the seqs are 0..last without a gap; and that the last seq is at least committed.json's, whose
// record must also carry the committed crc. LevelDB silently drops damaged write-ahead-log records
// when it reopens a database; only the committed.json check sees that loss. The gap and committed
// checks are made once when the log is opened (a key-only scan; nobody else can change the log
// afterwards: a writer holds the LevelDB lock and a reader works on a private copy), kept in memory
// for the writer's own appends, and re-checked along every range that is read. A read throws the
// first problem it meets: structural problems before yielding anything, a corrupt record when the
// read reaches it (the verified records before it have been yielded).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ClassicLevel } from 'classic-level';
import { writeFileAtomic } from './blobs.js';
import { canonicalJson, crc32Hex, decodeKey, decodeValue, encodeKey, encodeValue, MAX_SEQ, type StoredRecord } from './codec.js';
import { CorruptLogError } from './errors.js';
import { NotRegularFileError, readRegularFile } from './regular-file.js';
import { WrongExpectedSeqError } from '../storage/types.js';
import type { AppendInput, AppendOptions, BackwardRange, EventLog, ReadRange } from '../storage/types.js';

export type { StoredRecord } from './codec.js';
export type { AppendInput, AppendOptions, BackwardRange, ReadRange } from '../storage/types.js';

export type RunMode = 'write' | 'read';

export interface RunLogOptions {
  /** The `v` written into appended records (default 1). */
  schemaVersion?: number;
  /** Reading a record whose `v` is higher throws SchemaVersionError (default: no limit). */
  maxSchemaVersion?: number;
  /** Pending non-sync records that trigger a batch write (default 256). */
  flushThreshold?: number;
  /** Also write (without sync) once the oldest pending record is this old, so readers in other
   * processes (`retrace ui`, `state`) see a slow run's steps within about a second (default 1000 ms). */
  flushIntervalMs?: number;
  /** Record types written to the log's type index (readIndexed); default INDEXED_TYPES (events.ts).
   * Applies when a log is created or its index built; a log keeps the types it was indexed with. */
  indexedTypes?: readonly string[];
}

/** The contents of committed.json. */
export interface CommittedMark {
  seq: number;
  crc: string;
}

/**
 * committed.json may also carry the run's summary as of its seq (EventLog.setSummarizer):
 * `{"crc":"...","seq":N,"summary":{...},"summaryCrc":"..."}`, written in the same atomic file as
 * the mark, so it is never ahead of or behind it; `summaryCrc` is the CRC-32 of the summary's
 * canonical JSON, so damage to it is seen (readSummary then reads the log; fsck reports it).
 * Readers of the mark ignore both (older retrace too: it reads seq and crc only).
 */
export interface CommittedFile extends CommittedMark {
  summary?: unknown;
  summaryCrc?: string;
}

/** The stored summary of committed.json's text, checked: `summary` (undefined when there is none)
 * or `problem`, one line saying what is damaged. */
export function parseSummaryText(text: string): { summary?: unknown; problem?: string } {
  let f: Partial<CommittedFile> | null;
  try {
    f = JSON.parse(text) as Partial<CommittedFile> | null;
  } catch {
    return {}; // the mark's own parse reports an unreadable file
  }
  if (!f || typeof f !== 'object') return {};
  const has = 'summary' in f;
  const hasCrc = 'summaryCrc' in f;
  if (!has && !hasCrc) return {};
  if (!has || !hasCrc) return { problem: `committed.json has ${has ? 'a summary without its checksum' : 'a summary checksum without a summary'} (damaged)` };
  let body: string;
  try {
    body = canonicalJson(f.summary, 'summary');
  } catch {
    return { problem: 'committed.json holds a summary JSON cannot carry (damaged)' };
  }
  if (crc32Hex(body) !== f.summaryCrc) return { problem: `committed.json's summary does not match its checksum ${JSON.stringify(f.summaryCrc)} (damaged)` };
  return { summary: f.summary };
}

export const COMMITTED_FILE = 'committed.json';
export const DEFAULT_FLUSH_THRESHOLD = 256;
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
/** A key outside the seq range, deleted with { sync: true } to force an fsync of LevelDB's log. */
const SYNC_KEY = '~sync';
const BATCH_READ = 256;

// Keys beside the seq keys. Seq keys are 12 digits; these start with a letter or '~', which sort
// after every digit, so a scan of the seq range (this file, fsck, every older retrace) never meets
// them.
//
// The type index: `x:<type>:<seq>` → '' for each record of an indexed type, put in the same batch
// as the record (so the index never disagrees with the log it is in), and `~index` →
// {"v":1,"types":[...]} once the index covers the whole log. A log written before the index has no
// `~index`: its readers fall back to scanning (readIndexed filters a full read), and its first
// writer builds the index (one pass over the records, in batches, the marker last) at open.
export const INDEX_MARKER_KEY = '~index';
export const INDEX_PREFIX = 'x:';
/** The writer's fencing token: incremented (durably) at every write open. */
export const FENCE_KEY = '~fence';
const INDEX_BUILD_BATCH = 4096;

export function indexKey(type: string, seq: number): string {
  return `${INDEX_PREFIX}${type}:${encodeKey(seq)}`;
}

/** The seq of an index key of `type`, or null. */
export function indexKeySeq(type: string, key: string): number | null {
  const prefix = `${INDEX_PREFIX}${type}:`;
  if (!key.startsWith(prefix)) return null;
  return decodeKey(key.slice(prefix.length));
}

/** The `~index` marker's value: the types the index covers, or null when absent or unreadable
 * (then the log counts as not indexed and is read by scanning). */
export function parseIndexMarker(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  try {
    const m = JSON.parse(value) as { v?: unknown; types?: unknown } | null;
    if (m && m.v === 1 && Array.isArray(m.types) && m.types.every((t) => typeof t === 'string')) return new Set(m.types as string[]);
  } catch {
    // not indexed
  }
  return null;
}

export type LevelDb = ClassicLevel<string, string>;

interface Pending {
  seq: number;
  key: string;
  value: string;
  crc: string;
  type: string;
}

/**
 * The second copy of the committed mark, outside the LevelDB like committed.json itself, so that
 * losing the mark alone (committed.json deleted) or the mark and the log's tail together is
 * detected rather than read as "nothing was committed". `seq` -1 (crc null): the run was created
 * and nothing is committed yet. Written after committed.json on every commit (so it is never
 * ahead of it) and read before it (so a reader racing a commit never sees it ahead either).
 * Runs made before it existed have no copy; their first writer adds it.
 */
export const COMMITTED_COPY_FILE = 'committed.copy.json';

export interface CommittedCopy {
  seq: number;
  crc: string | null;
}

export function parseMark(text: string): CommittedCopy | null {
  try {
    const m = JSON.parse(text) as Partial<CommittedCopy> | null;
    if (m && m.seq === -1 && m.crc === null) return { seq: -1, crc: null };
    if (m && Number.isSafeInteger(m.seq) && (m.seq as number) >= 0 && typeof m.crc === 'string' && /^[0-9a-f]{8}$/.test(m.crc)) {
      return { seq: m.seq as number, crc: m.crc };
    }
  } catch {
    // fall through
  }
  return null;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch {
    return false;
  }
}

async function readMarkFile(runDir: string, runId: string, name: string): Promise<CommittedCopy | null> {
  let text: string;
  try {
    text = await readRegularFile(path.join(runDir, name), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // A bare "EISDIR: illegal operation on a directory, read" named neither the run nor the file
    // (and a FIFO in its place blocked the read forever).
    const what = err instanceof NotRegularFileError ? `is ${err.what}, not a file` : `cannot be read (${(err as Error).message})`;
    throw new CorruptLogError(runId, -1, `${path.join(runDir, name)} ${what}; move it aside and run \`retrace fsck ${runId}\``);
  }
  const mark = parseMark(text);
  if (!mark) throw new CorruptLogError(runId, -1, `${name} is unreadable: ${JSON.stringify(text.slice(0, 80))}`);
  return mark;
}

/** Both marks as found, and what is wrong with them (null when they agree). */
export interface CommittedMarks {
  /** committed.json: the mark every check uses. */
  committed: CommittedMark | null;
  /** committed.copy.json; null when absent (a run made before the copy existed). */
  copy: CommittedCopy | null;
  /** The highest seq either mark says was committed (-1 if none): what the log must reach. */
  highest: CommittedMark | null;
  problem: CorruptLogError | null;
}

/** Reads committed.json and its copy (the copy first, see COMMITTED_COPY_FILE) and compares them. */
export async function readCommittedMarks(runDir: string, runId: string): Promise<CommittedMarks> {
  let copy: CommittedCopy | null = null;
  let problem: CorruptLogError | null = null;
  try {
    copy = await readMarkFile(runDir, runId, COMMITTED_COPY_FILE);
  } catch (err) {
    if (!(err instanceof CorruptLogError)) throw err;
    problem = err;
  }
  const committed = (await readMarkFile(runDir, runId, COMMITTED_FILE)) as CommittedMark | null;
  const copyMark = copy && copy.seq >= 0 ? (copy as CommittedMark) : null;
  if (!problem && copyMark && !committed) {
    problem = new CorruptLogError(
      runId,
      copyMark.seq,
      `${COMMITTED_FILE} is missing but its copy ${COMMITTED_COPY_FILE} says events up to ${copyMark.seq} were committed (the durable mark was deleted; run \`retrace fsck ${runId}\`)`,
    );
  } else if (!problem && copyMark && committed && (committed.seq < copyMark.seq || (committed.seq === copyMark.seq && committed.crc !== copyMark.crc))) {
    problem = new CorruptLogError(
      runId,
      copyMark.seq,
      `${COMMITTED_FILE} names event ${committed.seq} (crc ${committed.crc}) but its copy ${COMMITTED_COPY_FILE} names event ${copyMark.seq} (crc ${copyMark.crc}): the mark was replaced by an older one (run \`retrace fsck ${runId}\`)`,
    );
  }
  // A run made by this retrace has its copy from creation (written before parent.json): without
  // it, the marks were deleted, and "nothing committed" would be a lie.
  if (!problem && copy === null && (await exists(path.join(runDir, 'parent.json')))) {
    problem = new CorruptLogError(
      runId,
      -1,
      `${COMMITTED_COPY_FILE} is missing${committed ? '' : `, and so is ${COMMITTED_FILE}`}, though the run keeps both from its creation (a durable mark was deleted; run \`retrace fsck ${runId}\`)`,
    );
  }
  const highest = copyMark && (!committed || copyMark.seq > committed.seq) ? copyMark : committed;
  return { committed, copy, highest, problem };
}

/** committed.json, checked against its copy: CorruptLogError when either is unreadable or they disagree. */
export async function readCommitted(runDir: string, runId: string): Promise<CommittedMark | null> {
  const marks = await readCommittedMarks(runDir, runId);
  if (marks.problem) throw marks.problem;
  return marks.committed;
}

/** The summary stored in `<runDir>/committed.json`, with the seq it describes; null when the file
 * is missing, unreadable, or carries no summary. One file read. */
export async function readSummaryFile(runDir: string): Promise<{ seq: number; summary: unknown } | null> {
  let text: string;
  try {
    text = await readRegularFile(path.join(runDir, COMMITTED_FILE), 'utf8');
  } catch {
    return null;
  }
  const mark = parseMark(text);
  if (!mark || mark.seq < 0) return null;
  const { summary } = parseSummaryText(text);
  return summary === undefined || summary === null ? null : { seq: mark.seq, summary };
}

/** Writes the copy of the mark (durably). Only the run's writer calls it, after committed.json. */
export async function writeCommittedCopy(runDir: string, mark: CommittedCopy): Promise<void> {
  await writeFileAtomic(path.join(runDir, COMMITTED_COPY_FILE), JSON.stringify(mark) + '\n');
}

/**
 * The state of one open LevelDB of a run, shared by every RunLog of this process on it (a writer
 * and the readers opened while it is open). Internal to the store.
 */
export class RunCore {
  /** Next seq to assign. */
  nextSeq = 0;
  /** Highest seq written to LevelDB (-1 if none). */
  flushedLast = -1;
  buffer: Pending[] = [];
  committed: CommittedMark | null;
  /** A problem found by the open-time checks (gap, lost tail, committed record replaced). */
  structural: Error | null = null;
  /** A write that failed: the log's state in this process is unknown, every later call throws it. */
  failed: Error | null = null;
  /** The types this log's index covers (`~index`); null: not indexed, readIndexed scans. */
  indexed: Set<string> | null = null;
  /** The writer's fencing token (`~fence` after its increment at open); 0 for a reader. */
  fence = 0;
  /** Called after every append and every write (follow's same-process wake-up). */
  readonly listeners = new Set<() => void>();
  summarizer: ((seq: number) => unknown) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  readonly flushThreshold: number;
  readonly flushIntervalMs: number;
  /** When the oldest record still in the buffer was appended (ms since the epoch). */
  private bufferedSince = 0;

  private constructor(
    readonly runId: string,
    readonly runDir: string,
    readonly db: LevelDb,
    readonly writable: boolean,
    readonly options: RunLogOptions,
    committed: CommittedMark | null,
  ) {
    this.committed = committed;
    this.flushThreshold = Math.max(1, options.flushThreshold ?? DEFAULT_FLUSH_THRESHOLD);
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
  }

  /**
   * Wraps an open LevelDB and checks its structure. `committed` is committed.json as read before
   * the database was opened (a reader's copy must be taken after reading it); a writer rewrites
   * `<runDir>/committed.json` after each sync append.
   *
   * A writer scans every key (gap-free from 0, up to the committed mark: resuming must start from
   * a whole log), takes the next fence and builds the type index if the log has none. A reader
   * only seeks the last key and checks the committed record (one get): its reads check their own
   * range's continuity, so opening costs the same at any length; fsck makes the full checks.
   */
  static async open(args: {
    runId: string;
    runDir: string;
    db: LevelDb;
    writable: boolean;
    options: RunLogOptions;
    committed: CommittedMark | null;
  }): Promise<RunCore> {
    const core = new RunCore(args.runId, args.runDir, args.db, args.writable, args.options, args.committed);
    if (args.writable) await core.scan();
    else await core.seekLast();
    core.indexed = parseIndexMarker(await core.db.get(INDEX_MARKER_KEY));
    if (args.writable && !core.structural) {
      if (core.indexed === null) await core.buildIndex();
      await core.takeFence();
    }
    return core;
  }

  private indexTypes(): readonly string[] {
    return this.options.indexedTypes ?? [];
  }

  /** Puts the index keys of every record (one pass, in batches), then the marker. Idempotent: a
   * writer killed mid-way leaves no marker and the next one starts again. */
  private async buildIndex(): Promise<void> {
    const types = [...new Set(this.indexTypes())].sort();
    const wanted = new Set(types);
    if (this.flushedLast >= 0 && wanted.size > 0) {
      const it = this.db.iterator({ gte: encodeKey(0), lte: encodeKey(this.flushedLast) });
      try {
        for (;;) {
          const entries = await it.nextv(INDEX_BUILD_BATCH);
          if (entries.length === 0) break;
          const batch = this.db.batch();
          for (const [key, value] of entries) {
            const rec = decodeValue(this.runId, key, value);
            if (wanted.has(rec.type)) batch.put(indexKey(rec.type, rec.seq), '');
          }
          await batch.write();
        }
      } finally {
        await it.close();
      }
    }
    await this.db.put(INDEX_MARKER_KEY, JSON.stringify({ v: 1, types }), { sync: true });
    this.indexed = wanted;
  }

  /** fence = stored fence + 1, durably, before the writer appends anything. */
  private async takeFence(): Promise<void> {
    const stored = Number(await this.db.get(FENCE_KEY));
    const next = (Number.isSafeInteger(stored) && stored > 0 ? stored : 0) + 1;
    await this.db.put(FENCE_KEY, String(next), { sync: true });
    this.fence = next;
  }

  /** The fence stored in the log now (a writer compares its own with it; see EventLog.fence). */
  async storedFence(): Promise<number> {
    const stored = Number(await this.db.get(FENCE_KEY));
    return Number.isSafeInteger(stored) ? stored : 0;
  }

  /** Key-only scan: gap-free from 0, last seq ≥ committed seq, committed record's crc. */
  private async scan(): Promise<void> {
    const it = this.db.keys({ gte: encodeKey(0), lte: encodeKey(MAX_SEQ) });
    let expected = 0;
    let gap: CorruptLogError | null = null;
    try {
      for (;;) {
        const keys = await it.nextv(4096);
        if (keys.length === 0) break;
        for (const k of keys) {
          const seq = decodeKey(k);
          if (seq === null) continue; // cannot happen inside the seq range
          if (seq !== expected && gap === null) {
            gap = new CorruptLogError(this.runId, expected, `events ${seqRange(expected, seq - 1)} are missing`);
          }
          expected = seq + 1;
        }
      }
    } finally {
      await it.close();
    }
    await this.checkTail(expected - 1, gap);
  }

  /** A reader's open: the last key by one reverse seek; gaps are found by the reads that cross them. */
  private async seekLast(): Promise<void> {
    const keys = await this.db.keys({ gte: encodeKey(0), lte: encodeKey(MAX_SEQ), reverse: true, limit: 1 }).all();
    const last = keys.length > 0 ? (decodeKey(keys[0]!) ?? -1) : -1;
    await this.checkTail(last, null);
  }

  private async checkTail(last: number, gap: CorruptLogError | null): Promise<void> {
    this.flushedLast = last;
    this.nextSeq = last + 1;
    const c = this.committed;
    if (gap) this.structural = gap;
    else if (c && c.seq > last) {
      this.structural = new CorruptLogError(
        this.runId,
        last + 1,
        last < 0
          ? `the log is empty but events up to ${c.seq} were committed (events ${seqRange(0, c.seq)} are missing)`
          : `the log ends at event ${last} but events up to ${c.seq} were committed (events ${seqRange(last + 1, c.seq)} are missing)`,
      );
    } else if (c) {
      const value = await this.db.get(encodeKey(c.seq));
      const crc = value?.slice(0, 8);
      if (crc !== c.crc) {
        this.structural = new CorruptLogError(
          this.runId,
          c.seq,
          value === undefined
            ? `event ${c.seq} is missing (it was committed)`
            : `event ${c.seq} is not the event that was committed (crc ${crc ?? 'none'}, committed ${c.crc})`,
        );
      }
    }
  }

  assertUsable(): void {
    if (this.failed) throw this.failed;
    if (this.structural) throw this.structural;
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const p = this.queue.then(() => {
      if (this.failed) throw this.failed;
      return op();
    });
    this.queue = p.catch(() => {});
    return p;
  }

  /** Validates, encodes and assigns seqs (synchronously, so call order is seq order). */
  append(records: readonly AppendInput[], sync: boolean, expectedSeq?: number): Promise<number[]> {
    try {
      this.assertUsable();
      if (!Array.isArray(records)) throw new TypeError('append() takes an array of records');
      if (expectedSeq !== undefined) {
        if (!Number.isSafeInteger(expectedSeq) || expectedSeq < 0) throw new TypeError(`expectedSeq must be an integer ≥ 0, got ${String(expectedSeq)}`);
        if (expectedSeq !== this.nextSeq) throw new WrongExpectedSeqError(this.runId, expectedSeq, this.nextSeq);
      }
      const v = this.options.schemaVersion ?? 1;
      const now = new Date().toISOString();
      const encoded: Pending[] = records.map((r, i) => {
        if (r === null || typeof r !== 'object') throw new TypeError(`record ${i} is not an object`);
        if (typeof r.type !== 'string' || r.type.length === 0) throw new TypeError(`record ${i} has no type`);
        if (r.at !== undefined && (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at)))) {
          throw new TypeError(`record ${i} (${r.type}) has an "at" that is not an ISO time: ${String(r.at)}`);
        }
        const seq = this.nextSeq + i;
        const { value, crc } = encodeValue({ v, seq, type: r.type, at: r.at ?? now, data: r.data });
        return { seq, key: encodeKey(seq), value, crc, type: r.type };
      });
      if (encoded.length === 0) return sync ? this.flushTo(this.nextSeq - 1, true).then(() => []) : Promise.resolve([]);
      this.nextSeq += encoded.length;
      if (this.buffer.length === 0) this.bufferedSince = Date.now();
      this.buffer.push(...encoded);
      this.notify();
      const seqs = encoded.map((e) => e.seq);
      const last = seqs[seqs.length - 1];
      if (sync) return this.flushTo(last, true).then(() => seqs);
      if (this.buffer.length >= this.flushThreshold || Date.now() - this.bufferedSince >= this.flushIntervalMs) {
        return this.flushTo(last, false).then(() => seqs);
      }
      return Promise.resolve(seqs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Writes the buffered records up to `target` as one batch (queued behind earlier writes), with
   * the index keys of the indexed ones. With `sync`, the batch is fsynced (a marker delete forces
   * that when nothing is pending) and committed.json advanced to the highest written seq, with the
   * summarizer's summary of that seq.
   */
  flushTo(target: number, sync: boolean): Promise<void> {
    return this.enqueue(async () => {
      let n = 0;
      while (n < this.buffer.length && this.buffer[n].seq <= target) n++;
      const entries = this.buffer.slice(0, n);
      const needsSync = sync && this.flushedLast + n > (this.committed?.seq ?? -1);
      if (n === 0 && !needsSync) return;
      try {
        // A chained batch: the same atomic write as db.batch(array), at a quarter of the CPU per
        // record (abstract-level's array form copies and re-validates every operation).
        const batch = this.db.batch();
        try {
          const indexed = this.indexed;
          for (const e of entries) {
            batch.put(e.key, e.value);
            if (indexed?.has(e.type)) batch.put(indexKey(e.type, e.seq), '');
          }
          if (entries.length === 0) batch.del(SYNC_KEY);
        } catch (err) {
          await batch.close();
          throw err;
        }
        await batch.write({ sync: needsSync });
        this.buffer.splice(0, n);
        if (this.buffer.length > 0) this.bufferedSince = Date.now();
        if (n > 0) this.flushedLast = entries[n - 1].seq;
        if (needsSync && this.flushedLast >= 0) {
          const crc = n > 0 ? entries[n - 1].crc : await this.crcOf(this.flushedLast);
          const mark = { seq: this.flushedLast, crc };
          await writeFileAtomic(path.join(this.runDir, COMMITTED_FILE), this.markText(mark));
          this.committed = mark;
          await writeCommittedCopy(this.runDir, mark);
        }
      } catch (err) {
        this.failed = err as Error;
        throw err;
      }
      this.notify();
    });
  }

  /** committed.json's text: the mark, and the summary of its seq when the summarizer gives one (a
   * summarizer that throws or returns what JSON cannot carry gives none: the mark is what matters). */
  private markText(mark: CommittedMark): string {
    let summary: unknown = null;
    if (this.summarizer) {
      try {
        summary = this.summarizer(mark.seq);
        if (summary !== null && summary !== undefined) {
          const body = canonicalJson(summary, 'summary');
          return `{"crc":${JSON.stringify(mark.crc)},"seq":${mark.seq},"summary":${body},"summaryCrc":${JSON.stringify(crc32Hex(body))}}\n`;
        }
      } catch {
        // no summary
      }
    }
    return JSON.stringify(mark) + '\n';
  }

  private async crcOf(seq: number): Promise<string> {
    const v = await this.db.get(encodeKey(seq));
    if (v === undefined) throw new CorruptLogError(this.runId, seq, `event ${seq} is missing`);
    return v.slice(0, 8);
  }

  /** Waits for queued writes to finish (successfully or not). */
  async drain(): Promise<void> {
    await this.queue;
  }

  dropUnflushed(): void {
    this.buffer = [];
    this.nextSeq = this.flushedLast + 1;
  }
}

function seqRange(a: number, b: number): string {
  return a === b ? `${a}` : `${a}..${b}`;
}

function checkSeqArg(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) || v === Infinity)) throw new RangeError(`${name} must be an integer, got ${v}`);
}

function plain(rec: StoredRecord): StoredRecord {
  return { v: rec.v, seq: rec.seq, type: rec.type, at: rec.at, data: rec.data };
}

/**
 * One handle on a run's log. Obtain it from Store.createRun / Store.openRun. A 'read' RunLog
 * cannot append; a 'write' RunLog is the process's only writer of the run.
 */
export class RunLog implements EventLog {
  private closed = false;

  /** @internal Use Store.createRun / Store.openRun. */
  constructor(
    private readonly core: RunCore,
    readonly mode: RunMode,
    private readonly onClose: (log: RunLog) => Promise<void>,
    /** The store's indexed types: readIndexed of another type is a TypeError. */
    private readonly indexable: ReadonlySet<string> = new Set(core.options.indexedTypes ?? []),
  ) {}

  get runId(): string {
    return this.core.runId;
  }

  get fence(): number {
    return this.mode === 'write' ? this.core.fence : 0;
  }

  /** Non-sync records appended but not yet written to LevelDB. */
  get pendingCount(): number {
    return this.core.buffer.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private check(): void {
    if (this.closed) throw new Error(`run "${this.runId}": this log handle is closed`);
  }

  /**
   * Appends records with consecutive seqs and returns them. With `sync: true` the records (and
   * every earlier one) are durable when this resolves; without, they may sit in memory until a
   * later flush (see the top of this file). `expectedSeq`: the seq the first record must get, else
   * WrongExpectedSeqError and nothing is appended. The fence needs no check per append here:
   * LevelDB's OS lock keeps every other writer out for as long as this one is open.
   */
  append(records: readonly AppendInput[], opts: AppendOptions): Promise<number[]> {
    try {
      this.check();
      if (this.mode !== 'write') throw new Error(`run "${this.runId}" is open for reading; open it with mode 'write' to append`);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.core.append(records, opts?.sync === true, opts?.expectedSeq);
  }

  /** Writes buffered non-sync records to LevelDB (without fsync). */
  async flush(): Promise<void> {
    this.check();
    if (this.core.writable) await this.core.flushTo(this.core.nextSeq - 1, false);
  }

  /** Checks the handle and the seq arguments, writes a writer's buffer (so its reads see its own
   * appends), and checks the log's integrity state: what every read does first. */
  private async readyToRead(seqs: Record<string, number | undefined> = {}): Promise<RunCore> {
    this.check();
    for (const [name, v] of Object.entries(seqs)) checkSeqArg(name, v);
    const core = this.core;
    if (core.writable) await core.flushTo(core.nextSeq - 1, false);
    core.assertUsable();
    return core;
  }

  /** Records lo..hi, verified, in seq order or (reverse) newest first; a seq missing on the way
   * is CorruptLogError naming the missing range. */
  private async *scan(lo: number, hi: number, reverse: boolean): AsyncIterable<StoredRecord> {
    const core = this.core;
    if (lo > hi) return;
    const it = core.db.iterator({ gte: encodeKey(lo), lte: encodeKey(hi), reverse });
    const decodeOpts = { maxSchemaVersion: core.options.maxSchemaVersion };
    const missing = (a: number, b: number) => new CorruptLogError(core.runId, a, `events ${seqRange(a, b)} are missing`);
    let expected = reverse ? hi : lo;
    try {
      for (;;) {
        const entries = await it.nextv(BATCH_READ);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const rec = decodeValue(core.runId, key, value, decodeOpts);
          if (rec.seq !== expected) throw reverse ? missing(rec.seq + 1, expected) : missing(expected, rec.seq - 1);
          expected += reverse ? -1 : 1;
          yield plain(rec);
        }
      }
    } finally {
      await it.close();
    }
    if (reverse ? expected >= lo : expected <= hi) throw reverse ? missing(lo, expected) : missing(expected, hi);
  }

  /** Records from..to (inclusive) in seq order, each verified. A writer's buffer is flushed first. */
  async *read(range: ReadRange = {}): AsyncIterable<StoredRecord> {
    const core = await this.readyToRead({ from: range.from, to: range.to });
    yield* this.scan(Math.max(0, range.from ?? 0), Math.min(range.to ?? Infinity, core.flushedLast), false);
  }

  /** Records from `from` (default the last) down to `to` (default 0), newest first, each verified;
   * a missing seq on the way is CorruptLogError. */
  async *readBackward(range: BackwardRange = {}): AsyncIterable<StoredRecord> {
    const core = await this.readyToRead({ from: range.from, to: range.to });
    yield* this.scan(Math.max(0, range.to ?? 0), Math.min(range.from ?? Infinity, core.flushedLast), true);
  }

  /**
   * Records of an indexed type in seq order, each read by its key and verified (the records
   * between them are not read). A log written before the index (no `~index`, or one that does not
   * cover `type`) is scanned instead: the same records, at the cost of a full read. TypeError for a
   * type the store does not index.
   */
  async *readIndexed(type: string, range: ReadRange = {}): AsyncIterable<StoredRecord> {
    this.check();
    if (!this.indexable.has(type)) throw new TypeError(`record type ${JSON.stringify(type)} is not indexed (indexed: ${[...this.indexable].join(', ')})`);
    const core = await this.readyToRead({ from: range.from, to: range.to });
    const from = Math.max(0, range.from ?? 0);
    const hi = Math.min(range.to ?? Infinity, core.flushedLast);
    if (from > hi) return;
    if (!core.indexed?.has(type)) {
      for await (const rec of this.read({ from, to: hi })) if (rec.type === type) yield rec;
      return;
    }
    const keys = await core.db.keys({ gte: indexKey(type, from), lte: indexKey(type, hi) }).all();
    const decodeOpts = { maxSchemaVersion: core.options.maxSchemaVersion };
    for (let i = 0; i < keys.length; i += BATCH_READ) {
      const seqs = keys.slice(i, i + BATCH_READ).map((k) => indexKeySeq(type, k));
      const values = await core.db.getMany(seqs.map((s) => (s === null ? '' : encodeKey(s))));
      for (let j = 0; j < seqs.length; j++) {
        const seq = seqs[j];
        if (seq === null) throw new CorruptLogError(core.runId, -1, `the log's type index has a key that is not an index key: ${JSON.stringify(keys[i + j])}`);
        const value = values[j];
        if (value === undefined) throw new CorruptLogError(core.runId, seq, `event ${seq} is missing (the ${type} index names it)`);
        const rec = decodeValue(core.runId, encodeKey(seq), value, decodeOpts);
        if (rec.type !== type) throw new CorruptLogError(core.runId, seq, `event ${seq} is a ${rec.type}, but the ${type} index names it`);
        yield plain(rec);
      }
    }
  }

  /** All records from..to as an array. */
  async readAll(range: ReadRange = {}): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    for await (const r of this.read(range)) out.push(r);
    return out;
  }

  /** One record, verified; undefined past the end of the log. */
  async get(seq: number): Promise<StoredRecord | undefined> {
    this.check();
    checkSeqArg('seq', seq);
    const core = this.core;
    if (core.writable && seq <= core.nextSeq - 1) await core.flushTo(seq, false);
    core.assertUsable();
    if (seq < 0 || seq > core.flushedLast) return undefined;
    const key = encodeKey(seq);
    const value = await core.db.get(key);
    if (value === undefined) throw new CorruptLogError(core.runId, seq, `event ${seq} is missing`);
    return plain(decodeValue(core.runId, key, value, { maxSchemaVersion: core.options.maxSchemaVersion }));
  }

  /** Several records in one LevelDB call (see EventLog.getMany). */
  async getMany(seqs: readonly number[]): Promise<Array<StoredRecord | undefined>> {
    this.check();
    for (const seq of seqs) checkSeqArg('seq', seq);
    const core = await this.readyToRead();
    const inside = seqs.filter((seq) => seq >= 0 && seq <= core.flushedLast);
    const values = await core.db.getMany(inside.map(encodeKey));
    const found = new Map<number, StoredRecord>();
    inside.forEach((seq, i) => {
      const value = values[i];
      if (value === undefined) throw new CorruptLogError(core.runId, seq, `event ${seq} is missing`);
      found.set(seq, plain(decodeValue(core.runId, encodeKey(seq), value, { maxSchemaVersion: core.options.maxSchemaVersion })));
    });
    return seqs.map((seq) => found.get(seq));
  }

  /** The highest seq (-1 if the log is empty), counting a writer's buffered records. */
  async lastSeq(): Promise<number> {
    this.check();
    this.core.assertUsable();
    return this.core.nextSeq - 1;
  }

  /** The last durably committed seq per committed.json (-1 if none). A reader sees it as of opening. */
  async committedSeq(): Promise<number> {
    this.check();
    return this.core.committed?.seq ?? -1;
  }

  /** See EventLog.setSummarizer: its summary is written into committed.json with every new mark. */
  setSummarizer(summarize: ((seq: number) => unknown) | null): void {
    this.check();
    if (this.mode !== 'write') throw new Error(`run "${this.runId}" is open for reading; only its writer keeps its summary`);
    this.core.summarizer = summarize;
  }

  /**
   * Closes this handle. A writer first writes its buffer with { sync: true } and advances
   * committed.json. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      // A log that failed a write or its integrity check is left exactly as it is.
      if (this.mode === 'write' && !this.core.failed && !this.core.structural) {
        await this.core.flushTo(this.core.nextSeq - 1, true);
      }
    } finally {
      if (this.mode === 'write') this.core.summarizer = null;
      await this.core.drain();
      await this.onClose(this);
    }
  }

  /**
   * TEST ONLY: forgets the buffered non-sync records, as a crash would. Call it, then close():
   * the log on disk is what a process killed at this point would have left.
   */
  __dropUnflushedForTest(): void {
    this.core.dropUnflushed();
  }
}
