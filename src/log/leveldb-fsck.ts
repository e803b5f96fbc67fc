// fsck's byte-level checks of the LevelDB + files store: everything that knows its folder layout
// (store.json, the runs/, blobs/ and tmp/ folders, each run's LevelDB files byte by byte, its
// committed marks, every record's checksum and key, the seqs' continuity, the type index, and the
// blob files' hashes). The fold check (does the machine agree with the log) is src/run/verify-log.ts;
// src/chaos/fsck.ts runs both. Store.checkIntegrity returns these problems.
//
// LevelDB rewrites files when it opens a database (and silently drops damaged log records), so the
// run's LevelDB folder is copied to a temporary folder outside the store first; only the copy is
// ever opened. The originals are only read.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { decodeKey, decodeValue, type StoredRecord } from './codec.js';
import { StoreError, UnknownRunError } from './errors.js';
import { SCHEMA_VERSION } from './events.js';
import { COMMITTED_COPY_FILE, FENCE_KEY, INDEX_MARKER_KEY, INDEX_PREFIX, indexKeySeq, parseSummaryText, readCommittedMarks, type CommittedMark, type CommittedMarks } from './run-log.js';
import { listRunIds, parseStoreJson, RUN_ID_RE, STORE_VERSION } from './store.js';
import { checkTable, decodeManifest, decodeWriteBatch, parseCurrent, readLogFile, type ManifestState } from './leveldb-files.js';
import { isErrno, pidAlive } from './processes.js';
import { describeNonFile, NotRegularFileError, readRegularFile } from './regular-file.js';
import { sweepSystemScratch, systemScratchPath } from './scratch.js';

export type FsckKind =
  | 'store'
  | 'committed'
  | 'leveldb-file'
  | 'leveldb-open'
  | 'record'
  | 'sequence'
  | 'schema'
  | 'machine'
  | 'blob'
  | 'checkpoint'
  | 'start';

export interface FsckProblem {
  /** null for the store as a whole. */
  runId: string | null;
  kind: FsckKind;
  /** The file concerned, relative to the store. */
  file?: string;
  seq?: number;
  blob?: string;
  message: string;
}

export interface FsckRunReport {
  runId: string;
  events: number;
  lastSeq: number;
  committedSeq: number | null;
  state: string | null;
  levelDbFiles: number;
  blobsChecked: number;
  /** The process writing it while fsck ran (fsck checked a consistent copy), if any. */
  writer: { pid: number; command?: string } | null;
  notes: string[];
  problems: FsckProblem[];
}

export interface FsckReport {
  store: string;
  ok: boolean;
  runs: FsckRunReport[];
  blobsChecked: number;
  problems: FsckProblem[];
  seconds: number;
}

export interface FsckOptions {
  /** Check this run only (with the blobs it names). */
  runId?: string;
}

export function seqRange(a: number, b: number): string {
  return a === b ? `${a}` : `${a}..${b}`;
}


/** store.json must be a retrace store's of a version this retrace reads. */
export async function checkStore(dir: string): Promise<FsckProblem[]> {
  let text: string;
  try {
    text = await readRegularFile(path.join(dir, 'store.json'), 'utf8');
  } catch (err) {
    if (err instanceof NotRegularFileError) return [{ runId: null, kind: 'store', file: 'store.json', message: `store.json is ${err.what}, not a file` }];
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
      const exists = await fsp.stat(dir).then(
        () => true,
        () => false,
      );
      throw new StoreError(`${dir} is not a retrace store (${exists ? 'it has no store.json' : 'it does not exist'})`, dir);
    }
    throw err;
  }
  const meta = parseStoreJson(text);
  if (!meta) {
    return [{ runId: null, kind: 'store', file: 'store.json', message: `store.json is not a retrace store's: ${JSON.stringify(text.slice(0, 80))}` }];
  }
  if (meta.version > STORE_VERSION) {
    return [{ runId: null, kind: 'store', file: 'store.json', message: `the store is version ${meta.version}; this retrace reads up to version ${STORE_VERSION}` }];
  }
  return [];
}

/** runs/, blobs/ and tmp/ must be folders where they exist (a file in their place stops every command). */
export async function checkStoreFolders(dir: string): Promise<FsckProblem[]> {
  const problems: FsckProblem[] = [];
  for (const sub of ['runs', 'blobs', 'tmp']) {
    const st = await fsp.stat(path.join(dir, sub)).catch(() => null);
    if (st && !st.isDirectory()) problems.push({ runId: null, kind: 'store', file: sub, message: `${sub} is a file, not a folder` });
  }
  return problems;
}

/**
 * Copies a LevelDB folder (every file) into `dst`; if a writer changes its manifest or CURRENT
 * during the copy, copies again. Returns the file names copied, and the entries that are not
 * regular files (a folder where a LevelDB file should be: reported, not copied).
 */
async function copyLevelDir(src: string, dst: string): Promise<{ names: string[]; notFiles: Map<string, string> }> {
  for (let attempt = 1; ; attempt += 1) {
    await fsp.rm(dst, { recursive: true, force: true });
    await fsp.mkdir(dst, { recursive: true });
    try {
      const current1 = await readRegularFile(path.join(src, 'CURRENT')).catch(() => null);
      const names = (await fsp.readdir(src)).sort();
      const notFiles = new Map<string, string>();
      const manifests1 = await Promise.all(names.filter((n) => n.startsWith('MANIFEST-')).map(async (n) => (await fsp.stat(path.join(src, n))).size));
      for (const n of names) {
        const st = await fsp.stat(path.join(src, n));
        if (st.isFile()) await fsp.copyFile(path.join(src, n), path.join(dst, n));
        else notFiles.set(n, describeNonFile(st));
      }
      const current2 = await readRegularFile(path.join(src, 'CURRENT')).catch(() => null);
      const names2 = (await fsp.readdir(src)).sort();
      const manifests2 = await Promise.all(names2.filter((n) => n.startsWith('MANIFEST-')).map(async (n) => (await fsp.stat(path.join(src, n))).size));
      const same =
        (current1 === null ? current2 === null : current2 !== null && Buffer.compare(current1, current2) === 0) &&
        names.join('\n') === names2.join('\n') &&
        manifests1.join(',') === manifests2.join(',');
      if (same || attempt >= 20) return { names: names.filter((n) => !notFiles.has(n)), notFiles };
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || attempt >= 20) throw err;
    }
    await new Promise((r) => setTimeout(r, 5 * attempt));
  }
}

const NUMBERED = /^(\d+)\.(log|ldb|sst)$/;

interface FileScan {
  /** Seq keys found in write-ahead log batches and tables (what LevelDB should give back). */
  keysSeen: Set<number>;
  files: number;
}

/** Byte-level checks of a copied LevelDB folder. */
async function checkLevelFiles(
  runId: string,
  copy: string,
  names: string[],
  rel: string,
  committedSeq: number | null,
  problems: FsckProblem[],
  notes: string[],
  notFiles: Map<string, string> = new Map(),
): Promise<FileScan> {
  const scan: FileScan = { keysSeen: new Set(), files: 0 };
  const add = (file: string, message: string) => problems.push({ runId, kind: 'leveldb-file', file: `${rel}/${file}`, message: `run "${runId}": ${file}: ${message}` });
  for (const [n, what] of notFiles) {
    // LevelDB writes its text diagnostics to LOG when it can; nothing else depends on them.
    if (/^LOG(\.old)?$/.test(n)) notes.push(`${n} is ${what} (LevelDB's diagnostics file; harmless)`);
    else add(n, `is ${what} where LevelDB keeps a file`);
  }
  const read = (n: string) => fsp.readFile(path.join(copy, n));

  let manifestName: string | null = null;
  if (notFiles.has('CURRENT')) {
    // reported above
  } else if (!names.includes('CURRENT')) {
    if (names.some((n) => n.startsWith('MANIFEST-') || NUMBERED.test(n))) add('CURRENT', 'is missing');
    else notes.push('the run has no LevelDB files (never written)');
  } else {
    manifestName = parseCurrent(await read('CURRENT'));
    if (!manifestName) add('CURRENT', `is damaged: ${JSON.stringify((await read('CURRENT')).toString('latin1').slice(0, 40))} is not "MANIFEST-NNNNNN\\n"`);
    else if (!names.includes(manifestName) && !notFiles.has(manifestName)) add('CURRENT', `names ${manifestName}, which does not exist`);
  }

  let manifest: ManifestState | null = null;
  for (const n of names.filter((x) => x.startsWith('MANIFEST-'))) {
    scan.files += 1;
    const r = readLogFile(await read(n));
    for (const p of r.problems) add(n, p.message);
    if (r.tornTail) add(n, `ends inside a record at byte ${r.tornTail.offset} (cut short or a damaged length)`);
    if (n === manifestName) {
      try {
        manifest = decodeManifest(r.records);
      } catch (err) {
        add(n, `a version edit is unreadable: ${(err as Error).message}`);
      }
    } else {
      notes.push(`${n} is not the current manifest (LevelDB deletes it on its next open)`);
    }
  }

  for (const n of names) {
    const m = NUMBERED.exec(n);
    if (!m) {
      if (!/^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+)$/.test(n)) notes.push(`unexpected file ${n} in the LevelDB folder`);
      continue;
    }
    scan.files += 1;
    const buf = await read(n);
    if (m[2] === 'log') {
      const r = readLogFile(buf);
      for (const p of r.problems) add(n, p.message);
      let highest = -1;
      for (const rec of r.records) {
        try {
          const batch = decodeWriteBatch(rec.data);
          for (const p of batch.puts) {
            const seq = decodeKey(p.key);
            if (seq !== null) {
              scan.keysSeen.add(seq);
              highest = Math.max(highest, seq);
            }
          }
        } catch (err) {
          add(n, `the write batch at byte ${rec.offset} is unreadable: ${(err as Error).message}`);
        }
      }
      if (r.tornTail) {
        // What a crash in the middle of a write leaves. Harmless when everything committed is in
        // the complete records before it (LevelDB drops it; resume re-executes those steps).
        const text = `ends inside a record at byte ${r.tornTail.offset}: a write cut short by a crash, or a damaged length (LevelDB drops that record)`;
        if (r.problems.length === 0 && (committedSeq === null || highest >= committedSeq)) notes.push(`${n} ${text}; only events after the committed ones can be in it`);
        else add(n, text);
      }
      const number = Number(m[1]);
      if (manifest?.logNumber != null && number < manifest.logNumber && number !== manifest.prevLogNumber) {
        notes.push(`${n} is older than the manifest's log ${manifest.logNumber} (obsolete)`);
      }
    } else {
      const r = checkTable(buf);
      for (const p of r.problems) add(n, p.message);
      for (const k of r.keys) {
        const seq = decodeKey(k);
        if (seq !== null) scan.keysSeen.add(seq);
      }
      const number = Number(m[1]);
      if (manifest && !manifest.tables.has(number)) notes.push(`${n} is not in the manifest (obsolete)`);
      else if (manifest && manifest.tables.get(number) !== buf.length) {
        add(n, `is ${buf.length} bytes; the manifest recorded ${manifest.tables.get(number)}`);
      }
    }
  }
  if (manifest) {
    for (const [number, size] of manifest.tables) {
      const base = String(number).padStart(6, '0');
      if (![`${base}.ldb`, `${base}.sst`].some((n) => names.includes(n) || notFiles.has(n))) add(`${base}.ldb`, `is missing (the manifest lists it, ${size} bytes)`);
    }
  }
  return scan;
}

export interface BlobCheck {
  ok: boolean;
  message: string | null;
  bytes: Uint8Array | null;
}

export class BlobChecker {
  private readonly cache = new Map<string, BlobCheck>();
  checked = 0;
  constructor(private readonly dir: string) {}

  pathOf(hash: string): string {
    return path.join(this.dir, 'blobs', hash.slice(0, 2), hash);
  }

  async check(hash: string): Promise<BlobCheck> {
    const hit = this.cache.get(hash);
    if (hit) return hit;
    let result: BlobCheck;
    if (!/^[0-9a-f]{64}$/.test(hash)) {
      result = { ok: false, message: `${JSON.stringify(hash)} is not a blob hash`, bytes: null };
    } else {
      try {
        // A killed gc may have left the blob aside under a condemned name: readers still find it
        // there and the next gc puts it back, so it is not missing.
        const bytes = await readRegularFile(this.pathOf(hash)).catch(async (err: unknown) => {
          if (!isErrno(err, 'ENOENT')) throw err;
          const dir = path.dirname(this.pathOf(hash));
          const aside = (await fsp.readdir(dir).catch(() => [] as string[])).find((n) => n.startsWith(`${hash}.gc-`));
          // None (or gone meanwhile): a gc may just have put it back, so look at its name once more.
          return (aside === undefined ? null : await fsp.readFile(path.join(dir, aside)).catch(() => null)) ?? fsp.readFile(this.pathOf(hash));
        });
        this.checked += 1;
        const actual = createHash('sha256').update(bytes).digest('hex');
        result =
          actual === hash
            ? { ok: true, message: null, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) }
            : { ok: false, message: `blob ${hash} is corrupt: its ${bytes.length} bytes hash to ${actual}`, bytes: null };
      } catch (err) {
        const file = `blobs/${hash.slice(0, 2)}/${hash}`;
        if (isErrno(err, 'ENOENT')) result = { ok: false, message: `blob ${hash} is missing from the store`, bytes: null };
        else if (err instanceof NotRegularFileError) result = { ok: false, message: `blob ${hash} cannot be read: ${file} is ${err.what}, not a file`, bytes: null };
        else result = { ok: false, message: `blob ${hash} cannot be read: ${file}: ${(err as Error).message}`, bytes: null };
      }
    }
    this.cache.set(hash, result);
    return result;
  }
}


async function readOwner(runDir: string): Promise<{ pid: number; command?: string } | null> {
  try {
    const o = JSON.parse(await readRegularFile(path.join(runDir, 'owner.json'), 'utf8')) as { pid?: unknown; command?: string };
    return typeof o.pid === 'number' ? { pid: o.pid, command: o.command } : null;
  } catch {
    return null;
  }
}


/** What checkRunBytes found, for the fold check to go on from. */
export interface RunBytes {
  /** The run's report with every byte-level field and problem; `state` and `blobsChecked` are the fold's. */
  report: FsckRunReport;
  /** Every record that decoded (checksum, key), in seq order. */
  records: StoredRecord[];
  /** The first seq the fold must not reach (a gap, a damaged record, a failed read), or null. */
  stop: number | null;
  /** Whether a committed mark exists (an empty log with one is damage). */
  committed: boolean;
  /** The log could not be read at all (no log folder, LevelDB cannot open it): nothing to fold. */
  unread: boolean;
}

/**
 * Byte-level checks of one run: its folder's files, owner.json, both committed marks, its LevelDB
 * files byte by byte, and (through LevelDB on a private copy in `scratch`) every record's checksum
 * and key, the seqs' continuity, the type index, and that the log reaches the committed mark.
 * Reads only; opens only the copy.
 */
export async function checkRunBytes(storeDir: string, runId: string, scratch: string): Promise<RunBytes> {
  const runDir = path.join(storeDir, 'runs', runId);
  const rel = `runs/${runId}/log`;
  const problems: FsckProblem[] = [];
  const notes: string[] = [];
  const report: FsckRunReport = { runId, events: 0, lastSeq: -1, committedSeq: null, state: null, levelDbFiles: 0, blobsChecked: 0, writer: null, notes, problems };

  const owner = await readOwner(runDir);
  if (owner && pidAlive(owner.pid)) {
    report.writer = owner;
    notes.push(`process ${owner.pid} is writing this run; checked a consistent copy of its log`);
  } else if (owner) {
    notes.push(`owner.json names process ${owner.pid}, which is gone (a crashed writer; resume clears it)`);
  }

  for (const n of (await fsp.readdir(runDir).catch(() => [] as string[])).sort()) {
    const st = n === 'owner.json' ? await fsp.stat(path.join(runDir, n)).catch(() => null) : null;
    if (st && !st.isFile()) {
      problems.push({ runId, kind: 'store', file: `runs/${runId}/owner.json`, message: `run "${runId}": runs/${runId}/owner.json is ${describeNonFile(st)}, not a file (no process can open the run for writing)` });
    } else if (/^(committed|committed\.copy|owner)\.json\.tmp-/.test(n)) notes.push(`leftover temp file ${n} (a write cut short by a crash; removed when the run is next opened for writing)`);
    else if (!['log', 'committed.json', COMMITTED_COPY_FILE, 'owner.json', 'parent.json'].includes(n)) notes.push(`unexpected file ${n} in the run folder`);
  }

  // committed.json before the copy: whatever it names was in the log before it was written.
  // Both copies of the mark; the log is checked against the higher one, so a deleted or
  // replaced committed.json cannot hide a lost tail.
  let committed: CommittedMark | null = null;
  let marks: CommittedMarks | null = null;
  try {
    marks = await readCommittedMarks(runDir, runId);
    committed = marks.highest;
    if (marks.problem) problems.push({ runId, kind: 'committed', file: `runs/${runId}/committed.json`, message: marks.problem.message });
    const text = await readRegularFile(path.join(runDir, 'committed.json'), 'utf8').catch(() => null);
    const summary = text === null ? {} : parseSummaryText(text);
    if (summary.problem) problems.push({ runId, kind: 'committed', file: `runs/${runId}/committed.json`, message: `run "${runId}": ${summary.problem}; the log is intact, and the next commit writes a new summary` });
  } catch (err) {
    problems.push({ runId, kind: 'committed', file: `runs/${runId}/committed.json`, message: (err as Error).message });
  }
  report.committedSeq = committed?.seq ?? null;

  const copy = path.join(scratch, runId);
  let names: string[];
  let notFiles: Map<string, string>;
  try {
    ({ names, notFiles } = await copyLevelDir(path.join(runDir, 'log'), copy));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      problems.push({ runId, kind: 'leveldb-file', file: rel, message: `run "${runId}" has no log folder` });
      return { report, records: [], stop: null, committed: false, unread: true };
    }
    if (isErrno(err, 'ENOTDIR')) {
      problems.push({ runId, kind: 'leveldb-file', file: rel, message: `run "${runId}": ${rel} is a file, not the folder of its LevelDB` });
      return { report, records: [], stop: null, committed: false, unread: true };
    }
    throw err;
  }
  const scan = await checkLevelFiles(runId, copy, names, rel, committed?.seq ?? null, problems, notes, notFiles);
  report.levelDbFiles = scan.files;

  // Records, through LevelDB on the copy.
  const records: StoredRecord[] = [];
  const decoded = new Map<number, { crc: string; type: string }>();
  /** The type index's keys (run-log.ts): each must name a record of its type. */
  const indexed: Array<{ key: string; type: string; seq: number | null }> = [];
  let lastSeq = -1;
  let stopFold: number | null = null;
  const db = new ClassicLevel<string, string>(copy, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open({ createIfMissing: false });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    const text = (cause ?? (err as Error)).message.split('\n')[0]!.split(copy).join(path.join(runDir, 'log'));
    problems.push({ runId, kind: 'leveldb-open', file: rel, message: `run "${runId}": LevelDB cannot open the log: ${text}` });
    return { report, records: [], stop: null, committed: false, unread: true };
  }
  try {
    const it = db.iterator();
    let expected = 0;
    try {
      for (;;) {
        const batch = await it.nextv(256);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const seq = decodeKey(key);
          if (seq === null && (key === INDEX_MARKER_KEY || key === FENCE_KEY)) continue;
          if (seq === null && key.startsWith(INDEX_PREFIX)) {
            const type = key.slice(INDEX_PREFIX.length, key.lastIndexOf(':'));
            indexed.push({ key, type, seq: indexKeySeq(type, key) });
            continue;
          }
          if (seq === null) {
            problems.push({ runId, kind: 'record', message: `run "${runId}": the log has a key that is not a seq: ${JSON.stringify(key.slice(0, 40))}` });
            continue;
          }
          if (seq !== expected) {
            problems.push({ runId, kind: 'sequence', seq: expected, message: `run "${runId}": events ${seqRange(expected, seq - 1)} are missing` });
            stopFold ??= expected;
          }
          expected = seq + 1;
          lastSeq = seq;
          let raw;
          try {
            raw = decodeValue(runId, key, value, { maxSchemaVersion: SCHEMA_VERSION });
          } catch (err) {
            problems.push({ runId, kind: 'record', seq, message: (err as Error).message });
            stopFold ??= seq;
            continue;
          }
          decoded.set(seq, { crc: raw.crc, type: raw.type });
          records.push({ v: raw.v, seq: raw.seq, type: raw.type, at: raw.at, data: raw.data });
        }
      }
    } catch (err) {
      const cause = (err as { cause?: Error }).cause;
      const text = (cause ?? (err as Error)).message.split('\n')[0]!.split(copy).join(path.join(runDir, 'log'));
      problems.push({ runId, kind: 'leveldb-open', file: rel, message: `run "${runId}": reading the log failed after event ${lastSeq}: ${text}` });
      stopFold ??= lastSeq + 1;
    } finally {
      await it.close();
    }
  } finally {
    await db.close();
  }
  report.events = decoded.size;
  report.lastSeq = lastSeq;
  for (const x of indexed) {
    const rec = x.seq === null ? undefined : decoded.get(x.seq);
    if (x.seq === null || (rec && rec.type !== x.type) || (!rec && x.seq <= lastSeq && stopFold === null)) {
      problems.push({
        runId,
        kind: 'record',
        ...(x.seq !== null ? { seq: x.seq } : {}),
        message: `run "${runId}": the type index entry ${JSON.stringify(x.key.slice(0, 80))} names ${x.seq === null ? 'no event' : rec ? `event ${x.seq}, a ${rec.type}` : `event ${x.seq}, which is missing`}`,
      });
    } else if (!rec && x.seq > lastSeq) {
      problems.push({ runId, kind: 'sequence', seq: x.seq, message: `run "${runId}": the type index names event ${x.seq}, past the log's end (${lastSeq}): events were lost` });
    }
  }

  // Every seq the files hold must come back from LevelDB (a record LevelDB dropped is damage).
  const lost = [...scan.keysSeen].filter((s) => s > lastSeq).sort((a, b) => a - b);
  if (lost.length > 0) {
    problems.push({ runId, kind: 'sequence', seq: lost[0], message: `run "${runId}": events ${seqRange(lost[0]!, lost.at(-1)!)} are in the files but LevelDB does not return them` });
  }
  if (committed) {
    if (committed.seq > lastSeq) {
      problems.push({
        runId,
        kind: 'sequence',
        seq: lastSeq + 1,
        message: `run "${runId}": the log ends at event ${lastSeq} but events up to ${committed.seq} were committed (events ${seqRange(lastSeq + 1, committed.seq)} are missing)`,
      });
    } else {
      const rec = decoded.get(committed.seq);
      if (rec && rec.crc !== committed.crc) {
        problems.push({ runId, kind: 'committed', seq: committed.seq, message: `run "${runId}": event ${committed.seq} is not the event that was committed (crc ${rec.crc}, committed ${committed.crc})` });
      }
    }
  }
  const marksMissing = marks !== null && !marks.committed && !marks.copy;
  // A run that keeps both marks (every run that records its start state) lost them both.
  const first = records[0];
  if (marksMissing && first?.seq === 0 && first.type === 'run.created' && (first.data as { start?: unknown } | null)?.start) {
    problems.push({ runId, kind: 'committed', file: `runs/${runId}/committed.json`, message: `run "${runId}": committed.json and its copy ${COMMITTED_COPY_FILE} are both missing although the log holds events` });
  }
  return { report, records, stop: stopFold, committed: committed !== null, unread: false };
}

/**
 * The store's own byte-level checks: store.json, the runs/, blobs/ and tmp/ folders, entries of
 * runs/ that are not runs (a file, a symlink to nothing). Returns the run ids to check: all, or
 * `runId` alone (UnknownRunError if there is no such run). StoreError if `dir` is not a store.
 */
export async function checkStoreLayout(dir: string, runId?: string): Promise<{ problems: FsckProblem[]; runIds: string[] }> {
  const problems = await checkStore(dir);
  problems.push(...(await checkStoreFolders(dir)));
  let runIds: string[];
  try {
    runIds = await listRunIds(dir);
    if (runId === undefined) {
      for (const e of await fsp.readdir(path.join(dir, 'runs'), { withFileTypes: true })) {
        if (!RUN_ID_RE.test(e.name)) continue;
        if (e.isFile()) problems.push({ runId: null, kind: 'store', file: `runs/${e.name}`, message: `runs/${e.name} is a file, not a run's folder` });
        else if (e.isSymbolicLink() && !runIds.includes(e.name)) {
          const target = await fsp.readlink(path.join(dir, 'runs', e.name)).catch(() => '?');
          problems.push({ runId: e.name, kind: 'store', file: `runs/${e.name}`, message: `run "${e.name}": its folder runs/${e.name} is a symlink to ${target}, which does not exist (a disk not mounted?): its events and blobs cannot be checked` });
        }
      }
    }
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
    runIds = [];
  }
  if (runId !== undefined) {
    if (!RUN_ID_RE.test(runId) || !runIds.includes(runId)) throw new UnknownRunError(runId, runIds);
    runIds = [runId];
  }
  return { problems, runIds };
}

/** Every blob file in the store, referenced or not, must hash to its name; a shard must be a
 * folder. Problems about a blob already in `known` are not repeated. */
export async function checkBlobFiles(dir: string, blobs: BlobChecker, known: readonly FsckProblem[] = []): Promise<FsckProblem[]> {
  const problems: FsckProblem[] = [];
  let shards: string[] = [];
  try {
    shards = (await fsp.readdir(path.join(dir, 'blobs'))).sort();
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
  }
  for (const shard of shards) {
    let names: string[];
    try {
      names = (await fsp.readdir(path.join(dir, 'blobs', shard))).sort();
    } catch (err) {
      if (!isErrno(err, 'ENOTDIR')) throw err;
      if (/^[0-9a-f]{2}$/.test(shard)) problems.push({ runId: null, kind: 'store', file: `blobs/${shard}`, message: `blobs/${shard} is a file, not a folder of blobs` });
      continue;
    }
    for (const n of names) {
      if (!/^[0-9a-f]{64}$/.test(n) || !n.startsWith(shard)) continue;
      const c = await blobs.check(n);
      if (!c.ok && !known.some((p) => p.blob === n) && !problems.some((p) => p.blob === n)) problems.push({ runId: null, kind: 'blob', blob: n, file: `blobs/${shard}/${n}`, message: c.message! });
    }
  }
  return problems;
}

/**
 * Store.checkIntegrity: the byte-level problems of one run, or (`null`) of the store itself and
 * every blob file. Reads only; a run's LevelDB is opened only as a private copy in the system's
 * temp folder, removed afterwards.
 */
export async function checkLevelStore(dir: string, runId: string | null): Promise<FsckProblem[]> {
  if (runId === null) {
    const { problems } = await checkStoreLayout(dir);
    problems.push(...(await checkBlobFiles(dir, new BlobChecker(dir), problems)));
    return problems;
  }
  await checkStoreLayout(dir, runId);
  await sweepSystemScratch();
  const scratch = systemScratchPath('fsck');
  try {
    return (await checkRunBytes(dir, runId, scratch)).report.problems;
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}
