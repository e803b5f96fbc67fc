// `retrace fsck`: checks a store (or one run) and reports EVERY problem it finds, changing nothing.
//
// Per run:
//   - its LevelDB files, byte by byte (leveldb-files.ts): CURRENT, the manifest, write-ahead logs
//     and tables, every checksum; the manifest's live tables exist with their recorded sizes;
//   - committed.json is readable;
//   - every record: its checksum, its key, its schema (zod), its schema version; the seqs are
//     0..last without a gap and reach committed.json's seq, whose record carries the committed crc;
//   - folding the log through the machine from event 0 (RunHistory.foldFromStart) accepts every
//     event, reproduces every logged `state.changed` (and no transition is left unlogged), and
//     every checkpoint's stored `machine` snapshot;
//   - every blob a checkpoint or snapshot names exists, hashes to its name and has its size, and a
//     checkpoint's weightsHash is the hash of its weight blobs.
// Without a run: also store.json, and every blob file of the store hashes to its name.
//
// LevelDB rewrites files when it opens a database (and silently drops damaged log records), so the
// run's LevelDB folder is copied to a temporary folder outside the store first; only the copy is
// ever opened. The originals are only read.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { stateName, toPlain } from '../../machines/fold.js';
import { canonicalJson, decodeKey, decodeValue } from '../log/codec.js';
import { StoreError, UnknownRunError } from '../log/errors.js';
import { encodeStoredSnapshot, parseRecord, SCHEMA_VERSION, type CheckpointData, type LogRecord, type RunCreated, type TensorRef } from '../log/events.js';
import { branchPointProblem, checkpoint0Problems } from '../run/start-state.js';
import { COMMITTED_COPY_FILE, readCommittedMarks, type CommittedMark, type CommittedMarks } from '../log/run-log.js';
import { listRunIds, RUN_ID_RE, STORE_FORMAT, STORE_VERSION } from '../log/store.js';
import { RunHistory } from '../run/history.js';
import { checkTable, decodeManifest, decodeWriteBatch, parseCurrent, readLogFile, type ManifestState } from '../log/leveldb-files.js';
import { isErrno, pidAlive } from '../log/processes.js';
import { sweepSystemScratch, systemScratchPath } from '../log/scratch.js';
import { describeNonFile, NotRegularFileError, readRegularFile } from '../log/regular-file.js';

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

function seqRange(a: number, b: number): string {
  return a === b ? `${a}` : `${a}..${b}`;
}

/** store.json must be a retrace store's of a version this retrace reads. */
async function checkStore(dir: string): Promise<FsckProblem[]> {
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
  let meta: { format?: unknown; version?: unknown } | null;
  try {
    meta = JSON.parse(text) as { format?: unknown; version?: unknown } | null;
  } catch {
    meta = null;
  }
  if (!meta || meta.format !== STORE_FORMAT || typeof meta.version !== 'number') {
    return [{ runId: null, kind: 'store', file: 'store.json', message: `store.json is not a retrace store's: ${JSON.stringify(text.slice(0, 80))}` }];
  }
  if (meta.version > STORE_VERSION) {
    return [{ runId: null, kind: 'store', file: 'store.json', message: `the store is version ${meta.version}; this retrace reads up to version ${STORE_VERSION}` }];
  }
  return [];
}

/** runs/, blobs/ and tmp/ must be folders where they exist (a file in their place stops every command). */
async function checkStoreFolders(dir: string): Promise<FsckProblem[]> {
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

interface BlobCheck {
  ok: boolean;
  message: string | null;
  bytes: Uint8Array | null;
}

class BlobChecker {
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

/** Folds the log through the machine from event 0 and compares with what the log says. */
function checkMachine(runId: string, records: LogRecord[], problems: FsckProblem[]): string | null {
  let history: RunHistory;
  try {
    history = new RunHistory(runId, records);
  } catch (err) {
    problems.push({ runId, kind: 'machine', seq: 0, message: (err as Error).message });
    return null;
  }
  const add = (seq: number, message: string) => problems.push({ runId, kind: 'machine', seq, message: `run "${runId}": event ${seq}: ${message}` });
  /** seq of a state.changed → the transition the fold says its cause made. */
  const explained = new Set<number>();
  const final = history.foldFromStart((record, before, after, accepted) => {
    const from = stateName(before);
    const to = stateName(after);
    if (!accepted) add(record.seq, `${record.type} is not accepted by the machine in state ${from}`);
    const next = records[record.seq + 1];
    const logged = next?.type === 'state.changed' && next.data.cause === record.seq ? next : null;
    if (from !== to) {
      if (!logged) add(record.seq, `${record.type} moves the machine ${from} → ${to}, but no state.changed for it follows`);
      else {
        explained.add(logged.seq);
        if (logged.data.from !== from || logged.data.to !== to || logged.data.causeType !== record.type) {
          add(logged.seq, `state.changed says ${logged.data.from} → ${logged.data.to} (${logged.data.causeType}); folding the log gives ${from} → ${to} (${record.type})`);
        }
      }
    } else if (logged) {
      explained.add(logged.seq);
      add(logged.seq, `state.changed ${logged.data.from} → ${logged.data.to}, but event ${record.seq} (${record.type}) leaves the machine in ${from}`);
    }
    if (record.type === 'checkpoint.committed') {
      // Compared as stored (NaN as {"$float": "NaN"}), so NaN equals NaN and nothing else differs.
      const folded = encodeStoredSnapshot(toPlain(after));
      const stored = encodeStoredSnapshot(record.data.machine);
      if (canonicalJson(folded) !== canonicalJson(stored)) add(record.seq, `checkpoint ${record.data.index} (${record.data.kind}) stores a machine snapshot that differs from the fold's: ${firstDifference(stored, folded)}`);
      if (record.data.step !== before.context.step) add(record.seq, `checkpoint ${record.data.index} says step ${record.data.step}; the machine was at step ${before.context.step}`);
    }
  });
  for (const r of records) {
    if (r.type === 'state.changed' && !explained.has(r.seq)) {
      add(r.seq, `state.changed ${r.data.from} → ${r.data.to} names event ${r.data.cause} (${r.data.causeType}), which caused no such transition`);
    }
  }
  return stateName(final);
}

/** The first path where two JSON values differ, for a message. */
function firstDifference(a: unknown, b: unknown, at = 'machine'): string {
  if (canonicalJson(a) === canonicalJson(b)) return 'none';
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const x = (a as Record<string, unknown>)[k];
      const y = (b as Record<string, unknown>)[k];
      if (canonicalJson(x ?? null) !== canonicalJson(y ?? null)) return firstDifference(x, y, `${at}.${k}`);
    }
  }
  const show = (v: unknown) => {
    const t = v === undefined ? 'undefined' : canonicalJson(v);
    return t.length > 60 ? `${t.slice(0, 57)}...` : t;
  };
  return `${at} is ${show(a)}, the fold gives ${show(b)}`;
}

async function checkBlobs(runId: string, records: LogRecord[], blobs: BlobChecker, problems: FsckProblem[]): Promise<void> {
  for (const r of records) {
    let what: string;
    let data: { weights: TensorRef[]; optimizer?: TensorRef[]; weightsHash: string };
    if (r.type === 'checkpoint.committed') {
      what = `checkpoint ${r.data.index} (${r.data.kind}, event ${r.seq})`;
      data = r.data;
    } else if (r.type === 'snapshot.taken') {
      what = `snapshot at step ${r.data.step} (event ${r.seq})`;
      data = r.data;
    } else if (r.type === 'run.created' && r.data.start) {
      what = 'the start state run.created names';
      data = r.data.start;
    } else continue;
    const refs: Array<[TensorRef, 'weights' | 'optimizer']> = [
      ...data.weights.map((t) => [t, 'weights'] as [TensorRef, 'weights']),
      ...(data.optimizer ?? []).map((t) => [t, 'optimizer'] as [TensorRef, 'optimizer']),
    ];
    const weightBytes: Uint8Array[] = [];
    let allWeights = true;
    for (const [ref, kind] of refs) {
      const c = await blobs.check(ref.hash);
      if (!c.ok) {
        problems.push({ runId, kind: 'blob', seq: r.seq, blob: ref.hash, message: `run "${runId}": ${what}: ${kind} tensor ${ref.name}: ${c.message}` });
        if (kind === 'weights') allWeights = false;
        continue;
      }
      if (c.bytes!.byteLength !== ref.bytes) {
        problems.push({ runId, kind: 'blob', seq: r.seq, blob: ref.hash, message: `run "${runId}": ${what}: ${kind} tensor ${ref.name}: blob ${ref.hash} has ${c.bytes!.byteLength} bytes, the log says ${ref.bytes}` });
      }
      if (kind === 'weights') weightBytes.push(c.bytes!);
    }
    if (allWeights) {
      const h = createHash('sha256');
      for (const b of weightBytes) h.update(b);
      const actual = h.digest('hex');
      if (actual !== data.weightsHash) {
        problems.push({ runId, kind: 'checkpoint', seq: r.seq, message: `run "${runId}": ${what}: weightsHash ${data.weightsHash} is not the hash of its weight blobs (${actual})` });
      }
    }
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

/** Checks one run; reads its files, opens only a private copy of its LevelDB. */
/** What the lineage check needs of a run: its creation, checkpoint 0, and the weights at each
 * checkpoint or snapshot event (a branch point). */
interface LineageFacts {
  created: RunCreated;
  ckpt0Seq: number | null;
  ckpt0: CheckpointData | null;
  weightsAt: Map<number, { weightsHash: string; what: string }>;
}

function weightsBySeq(records: LogRecord[]): Map<number, { weightsHash: string; what: string }> {
  const out = new Map<number, { weightsHash: string; what: string }>();
  for (const r of records) {
    if (r.type === 'checkpoint.committed') out.set(r.seq, { weightsHash: r.data.weightsHash, what: `its ${r.data.kind} checkpoint ${r.data.index}, event ${r.seq}` });
    else if (r.type === 'snapshot.taken') out.set(r.seq, { weightsHash: r.data.weightsHash, what: `its snapshot at step ${r.data.step}, event ${r.seq}` });
  }
  return out;
}

/** A branch's start must be its parent's state at the branch point (where the parent's log holds
 * that state: a checkpoint or a snapshot at the point's event). */
function checkLineage(lineage: Map<string, LineageFacts>, problems: FsckProblem[]): void {
  for (const [runId, facts] of lineage) {
    const parent = facts.created.parent;
    if (!parent) continue;
    const at = lineage.get(parent.runId)?.weightsAt.get(parent.seq);
    if (!at) continue;
    const m = branchPointProblem(facts.created, facts.ckpt0, at);
    if (m) problems.push({ runId, kind: 'start', seq: facts.ckpt0Seq ?? 0, message: `run "${runId}": ${m}` });
  }
}

async function fsckRun(storeDir: string, runId: string, blobs: BlobChecker, scratch: string, lineage: Map<string, LineageFacts>): Promise<FsckRunReport> {
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
      return report;
    }
    if (isErrno(err, 'ENOTDIR')) {
      problems.push({ runId, kind: 'leveldb-file', file: rel, message: `run "${runId}": ${rel} is a file, not the folder of its LevelDB` });
      return report;
    }
    throw err;
  }
  const scan = await checkLevelFiles(runId, copy, names, rel, committed?.seq ?? null, problems, notes, notFiles);
  report.levelDbFiles = scan.files;

  // Records, through LevelDB on the copy.
  const records: LogRecord[] = [];
  const decoded = new Map<number, { crc: string }>();
  let lastSeq = -1;
  let stopFold: number | null = null;
  const db = new ClassicLevel<string, string>(copy, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open({ createIfMissing: false });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    const text = (cause ?? (err as Error)).message.split('\n')[0]!.split(copy).join(path.join(runDir, 'log'));
    problems.push({ runId, kind: 'leveldb-open', file: rel, message: `run "${runId}": LevelDB cannot open the log: ${text}` });
    return report;
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
          decoded.set(seq, { crc: raw.crc });
          try {
            const rec = parseRecord(runId, raw);
            if (stopFold === null) records.push(rec);
          } catch (err) {
            problems.push({ runId, kind: 'schema', seq, message: (err as Error).message });
            stopFold ??= seq;
          }
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
  if (stopFold !== null) notes.push(`machine and blob checks cover events 0..${stopFold - 1} (event ${stopFold} is unreadable)`);

  if (records.length > 0) {
    // A run that keeps both marks (every run that records its start state) lost them both.
    const first = records[0]!;
    if (marks && !marks.committed && !marks.copy && first.type === 'run.created' && first.data.start) {
      problems.push({ runId, kind: 'committed', file: `runs/${runId}/committed.json`, message: `run "${runId}": committed.json and its copy ${COMMITTED_COPY_FILE} are both missing although the log holds events` });
    }
    report.state = checkMachine(runId, records, problems);
    const before = blobs.checked;
    await checkBlobs(runId, records, blobs, problems);
    report.blobsChecked = blobs.checked - before;
    if (first.type === 'run.created') {
      const ckpt0 = records.find((r): r is Extract<LogRecord, { type: 'checkpoint.committed' }> => r.type === 'checkpoint.committed' && r.data.kind === 'initial');
      for (const m of checkpoint0Problems(first.data, ckpt0?.data ?? null)) {
        problems.push({ runId, kind: 'start', seq: ckpt0?.seq ?? 0, message: `run "${runId}": ${m}` });
      }
      lineage.set(runId, { created: first.data, ckpt0Seq: ckpt0?.seq ?? null, ckpt0: ckpt0?.data ?? null, weightsAt: weightsBySeq(records) });
    }
  } else if (lastSeq >= 0 || committed) {
    problems.push({ runId, kind: 'record', seq: 0, message: `run "${runId}" has no readable run.created event` });
  } else {
    notes.push('the log is empty: the run was stopped before it recorded its creation');
  }
  return report;
}

/** Checks a store, or one run of it. Changes nothing. */
export async function fsck(storeDir: string, opts: FsckOptions = {}): Promise<FsckReport> {
  const t0 = Date.now();
  const dir = path.resolve(storeDir);
  const problems = await checkStore(dir);
  problems.push(...(await checkStoreFolders(dir)));
  let runIds: string[];
  try {
    runIds = await listRunIds(dir);
    if (opts.runId === undefined) {
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
  if (opts.runId !== undefined) {
    if (!RUN_ID_RE.test(opts.runId) || !runIds.includes(opts.runId)) throw new UnknownRunError(opts.runId, runIds);
    runIds = [opts.runId];
  }
  const blobs = new BlobChecker(dir);
  // Outside the store (fsck writes nothing into it); a SIGKILLed fsck's copy is swept by the next
  // retrace command, this one included.
  await sweepSystemScratch();
  const scratch = systemScratchPath('fsck');
  const runs: FsckRunReport[] = [];
  try {
    const lineage = new Map<string, LineageFacts>();
    for (const runId of runIds) {
      const r = await fsckRun(dir, runId, blobs, scratch, lineage);
      runs.push(r);
      problems.push(...r.problems);
    }
    const lineageProblems: FsckProblem[] = [];
    checkLineage(lineage, lineageProblems);
    for (const p of lineageProblems) {
      runs.find((r) => r.runId === p.runId)?.problems.push(p);
      problems.push(p);
    }
    if (opts.runId === undefined) {
      // Every blob file in the store, referenced or not, must hash to its name.
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
          if (!c.ok && !problems.some((p) => p.blob === n)) problems.push({ runId: null, kind: 'blob', blob: n, file: `blobs/${shard}/${n}`, message: c.message! });
        }
      }
    }
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
  return { store: dir, ok: problems.length === 0, runs, blobsChecked: blobs.checked, problems, seconds: (Date.now() - t0) / 1000 };
}

export function formatFsck(r: FsckReport): string {
  const lines: string[] = [];
  for (const run of r.runs) {
    const status = run.problems.length === 0 ? 'ok' : `${run.problems.length} problem(s)`;
    lines.push(
      `run ${run.runId}: ${status}: events 0..${run.lastSeq}, committed ${run.committedSeq ?? 'none'}, state ${run.state ?? '?'}, ${run.levelDbFiles} LevelDB files, ${run.blobsChecked} blobs verified`,
    );
    for (const n of run.notes) lines.push(`  note: ${n}`);
    for (const p of run.problems) lines.push(`  ${p.kind}: ${p.message}`);
  }
  for (const p of r.problems.filter((x) => x.runId === null)) lines.push(`store: ${p.kind}: ${p.message}`);
  lines.push(
    r.ok
      ? `fsck ${r.store}: no problems (${r.runs.length} run(s), ${r.blobsChecked} blobs verified, ${r.seconds.toFixed(1)} s)`
      : `fsck ${r.store}: ${r.problems.length} problem(s) in ${r.runs.filter((x) => x.problems.length > 0).length} run(s)${r.problems.some((p) => p.runId === null) ? ' and the store' : ''}`,
  );
  return lines.join('\n');
}
