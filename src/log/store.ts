// The store: a folder of runs, one LevelDB per run, plus content-addressed blobs.
//
//   <store>/store.json                 {"format":"retrace-store","version":1}
//   <store>/runs/<runId>/log/          the run's LevelDB (see run-log.ts, codec.ts)
//   <store>/runs/<runId>/committed.json {"seq":N,"crc":"..."} last durably committed seq
//   <store>/runs/<runId>/owner.json    the process holding the run open for writing
//   <store>/runs/<runId>/parent.json   {"parent":"<runId>"|null}, written at creation (rm's lineage)
//   <store>/blobs/<hh>/<sha256hex>     snapshot bytes (blobs.ts)
//   <store>/tmp/                       scratch: readers' copies, blob temp files, rm's trash (removal.ts)
//
// One LevelDB per run because classic-level lets one process open a database: the runs of a sweep
// are trained by separate processes into one store.
//
// Opening a run:
// - 'write' opens the LevelDB exclusively. LevelDB's lock is an OS file lock, released when the
//   holder dies (even by SIGKILL), so there are no stale locks; if another process holds it,
//   RunLockedError names that process from owner.json. On success this process writes owner.json
//   (and removes it when it closes).
// - 'read' never opens the original database, because opening a LevelDB writes to it (log
//   recovery, a new MANIFEST) and would hold its lock, blocking a trainer that wants to resume.
//   Instead it takes a private copy into <store>/tmp/read-<pid>-<random>/ — the immutable table
//   files hard-linked, CURRENT, the MANIFEST and the write-ahead logs copied, retried when a
//   compaction changes the files mid-copy — opens that, and deletes it on close. That works while
//   another process writes the run: the reader sees a consistent prefix (committed.json is read
//   before the copy, so its check still holds; a torn last write in the copied log is dropped by
//   LevelDB). A 'read' of a run this process has open for writing shares the writer's handle
//   (no second open of the same LevelDB) and sees its buffered records.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { z } from 'zod';
import { FileBlobStore, fsyncDir, writeFileAtomic, type BlobStoreOptions } from './blobs.js';
import { CorruptLogError, RunLockedError, RunExistsError, StoreError, UnknownRunError, type RunOwner } from './errors.js';
import { readLogFile } from './leveldb-log.js';
import { checkLevelShape, inspectLevelDir } from './leveldb-preopen.js';
import { decodeManifest } from './leveldb-files.js';
import { readCommitted, readCommittedMarks, readSummaryFile, RunCore, RunLog, writeCommittedCopy, type LevelDb, type RunLogOptions, type RunMode, type StoredRecord } from './run-log.js';
import { INDEXED_TYPES } from './events.js';
import type { RunStore, StoredSummary, StoreProblem } from '../storage/types.js';
import { isErrno, pidAlive } from './processes.js';
import { finishRemovals, removeRunFolders, type HeldLock, type RemovalTarget } from './removal.js';
import { sweepSystemScratch, systemScratchPath } from './scratch.js';
import { describeNonFile, NotRegularFileError, readRegularFile } from './regular-file.js';

export const STORE_FORMAT = 'retrace-store';
export const STORE_VERSION = 1;
export const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface StoreOptions extends RunLogOptions, BlobStoreOptions {
  /** Create the store (and its folder) when missing (default true). */
  create?: boolean;
}

/** A LevelDB open in this process, shared by its writer and the readers opened alongside it. */
interface Shared {
  key: string;
  core: RunCore;
  writer: RunLog | null;
  /** A writer is opening it (owner.json being written): readers sharing it must not close it. */
  opening?: boolean;
  views: Set<RunLog>;
}

/** Per process: run log folder → its open LevelDB. */
const openCores = new Map<string, Shared>();

function ownerIsFolder(runId: string, runDir: string, what: string): CorruptLogError {
  return new CorruptLogError(runId, -1, `${path.join(runDir, 'owner.json')} is ${what}, not a file; move it aside and run \`retrace fsck ${runId}\``);
}

function isDiskFull(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } } | null;
  return e?.code === 'ENOSPC' || e?.cause?.code === 'ENOSPC' || /No space left on device/.test(`${e?.message} ${e?.cause?.message}`);
}

function isLevelLocked(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return e?.code === 'LEVEL_LOCKED' || e?.cause?.code === 'LEVEL_LOCKED';
}

function commandLine(): string {
  const argv = [path.basename(process.argv[0] ?? 'node'), ...process.argv.slice(1)];
  const s = argv.join(' ');
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

/**
 * A LevelDB error met while opening or scanning a run's log, as one line naming the run and the
 * run's own file. A reader works on a private copy, so LevelDB's message names a temp folder the
 * user has never heard of (`…/tmp/read-123-…/000005.ldb`); it is replaced by the run's log folder.
 * Other errors (and a held lock) are returned as they are.
 */
export function levelFailure(runId: string, err: unknown, openedDir: string, realDir: string): unknown {
  const e = err as { code?: unknown; message?: unknown; path?: unknown; cause?: { message?: unknown } } | null;
  // A file the copy needed and could not find (CURRENT naming a manifest that is not there).
  if (isErrno(err, 'ENOENT') && typeof e?.path === 'string' && e.path.startsWith(realDir + path.sep)) {
    return new CorruptLogError(runId, -1, `its LevelDB file ${e.path} is missing; run \`retrace fsck ${runId}\` for every problem, and keep a copy of the run's folder`);
  }
  if (typeof e?.code !== 'string' || !e.code.startsWith('LEVEL_') || isLevelLocked(err) || isDiskFull(err)) return err;
  const text = String(e.cause?.message ?? e.message ?? '')
    .split('\n')[0]!
    .split(openedDir)
    .join(realDir);
  const file = new RegExp(`${realDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/([^:\\s]+)`).exec(text)?.[1];
  const detail = file
    ? `its LevelDB file ${path.join(realDir, file)} is damaged or truncated (${text.replace(`${path.join(realDir, file)}: `, '').replace(`: ${path.join(realDir, file)}`, '')})`
    : `LevelDB cannot read its log in ${realDir} (${text})`;
  return new CorruptLogError(runId, -1, `${detail}; run \`retrace fsck ${runId}\` for every problem, and keep a copy of the run's folder`);
}

/** Whether the folder `dir` can be created (it is, and left empty for the caller). */
async function canCreate(dir: string): Promise<boolean> {
  try {
    await fsp.mkdir(dir);
    return true;
  } catch (err) {
    if (isNotWritable(err) || isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isDiskFull(err)) return false;
    throw err;
  }
}

async function openLevel(location: string, createIfMissing: boolean): Promise<LevelDb> {
  const db = new ClassicLevel<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open({ createIfMissing, errorIfExists: false });
  return db;
}

/** Bytes the files under `p` take on disk: allocated blocks (st.blocks × 512), not their length
 * (0 if it does not exist). */
/** Bytes allocated on disk (st.blocks × 512: folders too) and content bytes of `p` and everything
 * under it (symlinks inside are not followed; `p` itself is); zeros if it does not exist. */
export async function diskBytes(p: string, follow = true): Promise<{ allocated: number; content: number }> {
  let st;
  try {
    st = follow ? await fsp.stat(p) : await fsp.lstat(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { allocated: 0, content: 0 };
    throw err;
  }
  const own = { allocated: st.blocks * 512, content: st.isDirectory() ? 0 : st.size };
  if (!st.isDirectory()) return own;
  let names: string[];
  try {
    names = await fsp.readdir(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return own;
    throw err;
  }
  for (const n of names) {
    const u = await diskBytes(path.join(p, n), false);
    own.allocated += u.allocated;
    own.content += u.content;
  }
  return own;
}

const LEVEL_TABLE = /\.(ldb|sst)$/;
const LEVEL_COPIED = /^(CURRENT|MANIFEST-\d+|\d+\.log)$/;

/**
 * Copies a LevelDB that another process may be writing into `dst`: tables hard-linked (they are
 * immutable), CURRENT, MANIFEST and logs copied. Consistent when the MANIFEST (and CURRENT) did not
 * change during the copy — every flush or compaction appends to the MANIFEST before it deletes
 * files — otherwise, or when a file vanished mid-copy, it starts again. Returns false if `src` holds
 * no database.
 */
async function copyLevelDb(src: string, dst: string, check: { runId: string; shownAs: string }, attempts = 20): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    await fsp.rm(dst, { recursive: true, force: true });
    await fsp.mkdir(dst, { recursive: true });
    try {
      let current: string;
      try {
        current = await fsp.readFile(path.join(src, 'CURRENT'), 'utf8');
      } catch (err) {
        // No CURRENT: a run whose creator died before LevelDB wrote one (nothing to copy), or a
        // damaged database, which the check names (a writer never removes CURRENT).
        if (isErrno(err, 'ENOENT')) {
          const found = await inspectLevelDir(check.runId, src, check.shownAs);
          if (found.kind !== 'whole') return false;
        }
        throw err;
      }
      const manifest = current.trim();
      const manifestPath = path.join(src, manifest);
      const size1 = (await fsp.stat(manifestPath)).size;
      // The MANIFEST first: only the tables it references are linked. LevelDB in the copy creates
      // new files (with O_TRUNC) under numbers its MANIFEST has not used; had a table the original
      // wrote after that MANIFEST been linked under such a number, the copy would truncate the
      // original's file through the shared inode (a SIGBUS in the writer, measured).
      await fsp.copyFile(manifestPath, path.join(dst, manifest));
      const live = decodeManifest(readLogFile(await fsp.readFile(path.join(dst, manifest))).records);
      const minLog = Math.min(live.logNumber ?? 0, live.prevLogNumber || (live.logNumber ?? 0));
      const names = await fsp.readdir(src);
      for (const n of names) {
        const number = Number(/^(\d+)\./.exec(n)?.[1] ?? -1);
        if (LEVEL_TABLE.test(n) && live.tables.has(number)) {
          try {
            await fsp.link(path.join(src, n), path.join(dst, n));
          } catch (err) {
            if (isErrno(err, 'EXDEV') || isErrno(err, 'EPERM') || isErrno(err, 'EMLINK')) {
              await fsp.copyFile(path.join(src, n), path.join(dst, n));
            } else throw err;
          }
        } else if (n.endsWith('.log') && LEVEL_COPIED.test(n) && number >= minLog) {
          await fsp.copyFile(path.join(src, n), path.join(dst, n));
        }
      }
      for (const number of live.tables.keys()) {
        const name = `${String(number).padStart(6, '0')}`;
        if (!names.some((n) => n.startsWith(name) && LEVEL_TABLE.test(n))) {
          throw Object.assign(new Error(`table ${name} vanished during copy`), { code: 'ENOENT' });
        }
      }
      const size2 = (await fsp.stat(manifestPath)).size;
      const current2 = await fsp.readFile(path.join(src, 'CURRENT'), 'utf8');
      if (size1 !== size2 || current2 !== current) throw Object.assign(new Error('LevelDB changed during copy'), { code: 'ECHANGED' });
      await fsp.writeFile(path.join(dst, 'CURRENT'), current);
      return true;
    } catch (err) {
      // A file missing, or the MANIFEST changed, is what a compaction racing the copy looks like
      // for a moment; when it persists, or on any other error, the check tells damage apart and
      // names it by the run's own file (never the copy's).
      const transient = isErrno(err, 'ENOENT') || isErrno(err, 'ECHANGED');
      if (!transient || attempt >= 3) await inspectLevelDir(check.runId, src, check.shownAs);
      if (transient && attempt < attempts) {
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
        continue;
      }
      throw err;
    }
  }
}

/** Errors that say a folder cannot be written (a read-only store, or one owned by someone else);
 * LevelDB's own say it only in words ("IO error: …/LOCK: Read-only file system"). */
function isNotWritable(err: unknown): boolean {
  const e = err as { cause?: unknown; message?: unknown } | null;
  if (['EROFS', 'EACCES', 'EPERM'].some((code) => isErrno(err, code) || isErrno(e?.cause, code))) return true;
  return /(Read-only file system|Permission denied)/.test(`${String(e?.message)} ${String((e?.cause as { message?: unknown } | undefined)?.message)}`);
}

/** A write refused by a read-only store, as one line; reading it works (private copies go elsewhere). */
function readOnly(dir: string, what: string, err: unknown): StoreError {
  const e = err as { code?: unknown; message?: unknown; cause?: { message?: unknown } } | null;
  const text = `${String(e?.code)} ${String(e?.message)} ${String(e?.cause?.message)}`;
  const why = /EACCES|EPERM|Permission denied/.test(text) ? 'permission denied' : 'read-only file system';
  return new StoreError(`${what}: the store ${dir} is not writable (${why}); reading it works, writing needs write access`, dir);
}

/**
 * Makes sure `<store>/<sub>` is a folder. Something else in its place is a StoreError naming it
 * (it used to be a bare `EEXIST: file already exists, mkdir`). A read-only store that lacks the
 * folder is left as it is: readers need none of them, and a writer fails naming the store.
 */
async function ensureStoreFolder(abs: string, sub: string): Promise<void> {
  const p = path.join(abs, sub);
  let st;
  try {
    st = await fsp.stat(p);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  if (st && !st.isDirectory()) {
    throw new StoreError(`the store ${abs} is damaged: ${p} should be a folder but is a file; move it aside (retrace fsck reports what else is wrong)`, abs);
  }
  if (st) return;
  try {
    await fsp.mkdir(p, { recursive: true });
  } catch (err) {
    if (isNotWritable(err)) return;
    if (isErrno(err, 'EEXIST')) return ensureStoreFolder(abs, sub); // created meanwhile: check what it is
    throw err;
  }
}

const StoreJsonSchema = z.object({ format: z.literal(STORE_FORMAT), version: z.number().int().positive() });

/** store.json's content, validated: null when it is not a retrace store's (Store.open and fsck). */
export function parseStoreJson(text: string): z.infer<typeof StoreJsonSchema> | null {
  try {
    const parsed = StoreJsonSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function checkStoreJson(abs: string, text: string): void {
  const meta = parseStoreJson(text);
  if (!meta) {
    throw new StoreError(`${abs} is not a retrace store (its store.json is not a retrace store's)`, abs);
  }
  if (meta.version > STORE_VERSION) {
    throw new StoreError(`${abs} is a version ${meta.version} retrace store; this retrace reads up to version ${STORE_VERSION}, upgrade retrace`, abs);
  }
}

export interface RunOpenOptions extends RunLogOptions {}

/** `<run>/parent.json`: the run a new run branches from (null: none), written by createRun before
 * the run's first event, so a branch stays known as one even when its log cannot be read. */
export const PARENT_FILE = 'parent.json';
const ParentFile = z.object({ parent: z.string().regex(RUN_ID_RE).nullable() });

export interface CreateRunOptions extends RunOpenOptions {
  /** The parent run's id for a branch (recorded in parent.json); null or missing: not a branch. */
  parent?: string | null;
}

/**
 * The run ids under `<storeDir>/runs`, sorted: folders, and symlinks to folders (a run moved to
 * another disk and linked back is still a run; a link whose target is missing is not listed, and
 * gc refuses to run while one exists).
 */
export async function listRunIds(storeDir: string): Promise<string[]> {
  const runs = path.join(storeDir, 'runs');
  let entries;
  try {
    entries = await fsp.readdir(runs, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!RUN_ID_RE.test(e.name)) continue;
    if (e.isDirectory()) out.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if ((await fsp.stat(path.join(runs, e.name))).isDirectory()) out.push(e.name);
      } catch (err) {
        if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR') && !isErrno(err, 'ELOOP')) throw err;
      }
    }
  }
  return out.sort();
}

/** How often follow() looks for another process's appends (ms). */
const FOLLOW_POLL_MS = 200;
/** Records follow() reads per private copy before it yields them. */
const FOLLOW_BATCH = 1024;

export class Store implements RunStore {
  readonly kind = 'leveldb';
  readonly blobs: FileBlobStore;
  private readonly logs = new Set<RunLog>();
  private closed = false;

  private constructor(
    /** Absolute path of the store's folder. */
    readonly dir: string,
    private readonly options: StoreOptions,
  ) {
    this.blobs = new FileBlobStore(dir, options);
  }

  /**
   * Opens the store in `dir`, creating it when the folder is missing or empty (unless
   * `create: false`). A folder with other content and no store.json, or a store of a newer
   * version, is a StoreError.
   */
  static async open(dir: string, opts: StoreOptions = {}): Promise<Store> {
    const abs = path.resolve(dir);
    const create = opts.create ?? true;
    // Two processes may create the same store at once: whoever sees the other's store.json
    // appear while checking the folder reads it again.
    for (let attempt = 0; ; attempt++) {
      let text: string | null = null;
      try {
        text = await readRegularFile(path.join(abs, 'store.json'), 'utf8');
      } catch (err) {
        if (isErrno(err, 'ENOTDIR')) throw new StoreError(`${abs} is not a retrace store (it is a file)`, abs);
        if (err instanceof NotRegularFileError) throw new StoreError(`the store ${abs} is damaged: ${err.message}; move it aside`, abs);
        if (!isErrno(err, 'ENOENT')) throw err;
      }
      if (text !== null) {
        checkStoreJson(abs, text);
        break;
      }
      let names: string[] = [];
      try {
        names = (await fsp.readdir(abs)).filter((n) => !n.startsWith('store.json.tmp-'));
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
        if (!create) throw new StoreError(`${abs} is not a retrace store (it does not exist)`, abs);
      }
      if (names.includes('store.json') && attempt < 3) continue;
      if (names.length > 0) throw new StoreError(`${abs} is not a retrace store (it has other files and no store.json)`, abs);
      if (!create) throw new StoreError(`${abs} is not a retrace store (it has no store.json)`, abs);
      await fsp.mkdir(abs, { recursive: true });
      await writeFileAtomic(path.join(abs, 'store.json'), JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION }) + '\n');
      break;
    }
    for (const sub of ['runs', 'blobs', 'tmp']) await ensureStoreFolder(abs, sub);
    const store = new Store(abs, opts);
    await store.cleanTmp();
    await sweepSystemScratch();
    return store;
  }

  /** The record types readIndexed accepts. */
  get indexedTypes(): readonly string[] {
    return this.options.indexedTypes ?? INDEXED_TYPES;
  }

  /** The store's folder (RunStore.location). */
  get location(): string {
    return this.dir;
  }

  private runDir(id: string): string {
    if (typeof id !== 'string' || !RUN_ID_RE.test(id)) {
      throw new StoreError(`invalid run id ${JSON.stringify(id)}: letters, digits, ".", "_" or "-", at most 100, not starting with "." "_" "-"`);
    }
    return path.join(this.dir, 'runs', id);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError(`the store ${this.dir} is closed`, this.dir);
  }

  /** Removes scratch files left by processes that no longer run. */
  private async cleanTmp(): Promise<void> {
    const tmp = path.join(this.dir, 'tmp');
    let names: string[];
    try {
      names = await fsp.readdir(tmp);
    } catch {
      return;
    }
    for (const n of names) {
      const m = /^(?:read|blob)-(\d+)-/.exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      await fsp.rm(path.join(tmp, n), { recursive: true, force: true }).catch(() => {});
    }
    await finishRemovals(this.target(), (id) => this.lockRun(id));
  }

  /**
   * Refuses (StoreError) while a run's folder is a symlink whose target is missing (a disk not
   * mounted): its references are unknown. Symlinks to folders are followed like folders (listRuns).
   */
  async assertRunsReachable(why: string): Promise<void> {
    this.assertOpen();
    let entries;
    try {
      entries = await fsp.readdir(path.join(this.dir, 'runs'), { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const e of entries) {
      if (!e.isSymbolicLink()) continue;
      const link = path.join(this.dir, 'runs', e.name);
      try {
        await fsp.stat(link);
      } catch (err) {
        if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
        const target = await fsp.readlink(link).catch(() => '?');
        throw new StoreError(`run folder runs/${e.name} is a symlink to ${target}, which does not exist; ${why} (mount or restore it, or remove the link)`, this.dir);
      }
    }
  }

  /** Run ids, sorted (a run folder may be a symlink to a folder elsewhere: see listRunIds). */
  async listRuns(): Promise<string[]> {
    this.assertOpen();
    return listRunIds(this.dir);
  }

  async hasRun(id: string): Promise<boolean> {
    this.assertOpen();
    try {
      return (await fsp.stat(this.runDir(id))).isDirectory();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  private async assertRun(id: string): Promise<void> {
    if (await this.hasRun(id)) return;
    const st = await fsp.lstat(this.runDir(id)).catch(() => null);
    if (st && !st.isDirectory()) {
      const what = st.isSymbolicLink() ? 'a link to nothing' : st.isFile() ? 'a file' : 'not a folder';
      throw new StoreError(`run "${id}": ${this.runDir(id)} is ${what}, not a run's folder; move it aside (retrace fsck reports it)`, this.dir);
    }
    throw new UnknownRunError(id, await this.listRuns());
  }

  /**
   * Creates a run and opens it for writing. Creating runs/<id> is the atomic claim: if it exists,
   * RunExistsError.
   */
  async createRun(id: string, opts: CreateRunOptions = {}): Promise<RunLog> {
    this.assertOpen();
    const dir = this.runDir(id);
    try {
      await fsp.mkdir(dir);
    } catch (err) {
      if (isNotWritable(err)) throw readOnly(this.dir, `cannot create run "${id}"`, err);
      if (!isErrno(err, 'EEXIST')) throw err;
      if (!(await this.hasRun(id))) await this.assertRun(id); // a file in its place: says so
      // A creator killed before its first event was durable leaves an empty run: claim it again.
      if (await this.isEmptyRun(id)) {
        let log: RunLog | null = null;
        try {
          log = await this.openWrite(id, opts);
        } catch (e) {
          if (!(e instanceof RunLockedError)) throw e; // its creator is still at work
        }
        if (log && (await log.lastSeq()) < 0 && (await log.committedSeq()) < 0) return this.recordParent(id, log, opts.parent ?? null);
        await log?.close();
      }
      throw new RunExistsError(id, await this.liveWriter(id));
    }
    await fsyncDir(path.dirname(dir));
    const log = await this.openWrite(id, opts);
    await fsyncDir(dir);
    return this.recordParent(id, log, opts.parent ?? null);
  }

  /** Writes parent.json (durably, holding the run's lock, before its first event). */
  private async recordParent(id: string, log: RunLog, parent: string | null): Promise<RunLog> {
    try {
      await writeFileAtomic(path.join(this.runDir(id), PARENT_FILE), JSON.stringify({ parent }) + '\n');
      return log;
    } catch (err) {
      await log.close().catch(() => {});
      throw err;
    }
  }

  /**
   * True when the run's folder exists but nothing was ever committed to it and its log holds no
   * event: what a creator killed before its first sync append leaves. createRun reclaims it.
   */
  async isEmptyRun(id: string): Promise<boolean> {
    if (!(await this.hasRun(id))) return false;
    try {
      if ((await readCommitted(this.runDir(id), id)) !== null) return false;
      const log = await this.openRun(id, 'read');
      try {
        return (await log.lastSeq()) < 0;
      } finally {
        await log.close();
      }
    } catch {
      return false;
    }
  }

  /** The process holding the run open for writing, per its owner.json, if that process is alive. */
  async liveWriter(id: string): Promise<RunOwner | null> {
    const owner = await this.readOwner(id);
    return owner && owner.pid !== process.pid && pidAlive(owner.pid) ? owner : null;
  }

  /** The process holding the run open for writing (this one included), per its owner.json: null
   * when there is none or it is dead. A writer killed by SIGKILL leaves owner.json behind (its
   * LevelDB lock died with it), so a local pid is checked; another host's is taken at its word. */
  async holder(id: string): Promise<RunOwner | null> {
    const owner = await this.readOwner(id);
    if (!owner) return null;
    if (owner.hostname && owner.hostname !== os.hostname()) return owner;
    return pidAlive(owner.pid) ? owner : null;
  }

  /** Opens an existing run (UnknownRunError if none); see the top of this file for the modes. */
  async openRun(id: string, mode: RunMode, opts: RunOpenOptions = {}): Promise<RunLog> {
    this.assertOpen();
    if (mode !== 'write' && mode !== 'read') throw new TypeError(`mode must be 'write' or 'read', got ${String(mode)}`);
    await this.assertRun(id);
    return mode === 'write' ? this.openWrite(id, opts) : this.openRead(id, opts);
  }

  private runOptions(opts: RunOpenOptions): RunLogOptions {
    return {
      schemaVersion: opts.schemaVersion ?? this.options.schemaVersion,
      maxSchemaVersion: opts.maxSchemaVersion ?? this.options.maxSchemaVersion,
      flushThreshold: opts.flushThreshold ?? this.options.flushThreshold,
      flushIntervalMs: opts.flushIntervalMs ?? this.options.flushIntervalMs,
      indexedTypes: opts.indexedTypes ?? this.options.indexedTypes ?? INDEXED_TYPES,
    };
  }

  private track(log: RunLog): RunLog {
    this.logs.add(log);
    return log;
  }

  private async readOwner(id: string): Promise<RunOwner | null> {
    try {
      const o = JSON.parse(await readRegularFile(path.join(this.runDir(id), 'owner.json'), 'utf8')) as RunOwner;
      return typeof o?.pid === 'number' ? o : null;
    } catch {
      return null;
    }
  }

  private async openWrite(id: string, opts: RunOpenOptions): Promise<RunLog> {
    const runDir = this.runDir(id);
    const key = path.join(await fsp.realpath(runDir), 'log');
    let shared = openCores.get(key);
    if (shared?.writer) throw new RunLockedError(id, await this.readOwner(id), true);
    if (!shared) {
      const marks = await readCommittedMarks(runDir, id);
      if (marks.problem) throw marks.problem;
      const committed = marks.committed;
      await checkLevelShape(id, key, { writer: true });
      // Before LevelDB opens (and writes) anything: owner.json must be writable as a file.
      const ownerFile = await fsp.stat(path.join(runDir, 'owner.json')).catch(() => null);
      if (ownerFile && !ownerFile.isFile()) throw ownerIsFolder(id, runDir, describeNonFile(ownerFile));
      // Before LevelDB touches anything: its recovery would rewrite a damaged database.
      let found;
      try {
        found = await inspectLevelDir(id, key, `runs/${id}/log`, { verifyTables: true });
      } catch (err) {
        // A live writer's compaction can make the files look incomplete for a moment.
        const holder = await this.liveWriter(id);
        if (holder) throw new RunLockedError(id, holder);
        throw err;
      }
      // An absent or empty folder (a creator killed before LevelDB wrote a database) holds
      // nothing to lose; one that should hold committed events is never replaced by a new one.
      if (found.kind !== 'whole' && committed) {
        throw new CorruptLogError(id, 0, `runs/${id}/log holds no database but events up to ${committed.seq} were committed; not creating an empty one (run \`retrace fsck ${id}\`)`);
      }
      let db: LevelDb;
      try {
        db = await openLevel(key, found.kind !== 'whole');
      } catch (err) {
        if (isLevelLocked(err)) throw new RunLockedError(id, await this.readOwner(id));
        if (isNotWritable(err)) throw readOnly(this.dir, `cannot open run "${id}" for writing`, err);
        throw err;
      }
      let core: RunCore;
      try {
        // committed.json cannot change now: only the lock holder writes it.
        core = await RunCore.open({ runId: id, runDir, db, writable: true, options: this.runOptions(opts), committed });
      } catch (err) {
        await db.close().catch(() => {});
        throw levelFailure(id, err, key, key);
      }
      // Temp files of committed.json or owner.json that a holder killed mid-write left: only the
      // lock holder writes those files, so every such file is a dead process's.
      for (const n of await fsp.readdir(runDir)) {
        if (/^(committed|committed\.copy|owner)\.json\.tmp-/.test(n)) await fsp.rm(path.join(runDir, n), { force: true });
      }
      // The mark's copy catches up with committed.json: a holder killed between the two writes
      // left it one commit behind, a new run has none yet, nor has a run made before it existed.
      if (!marks.copy || marks.copy.seq < (committed?.seq ?? -1)) {
        try {
          await writeCommittedCopy(runDir, committed ?? { seq: -1, crc: null });
        } catch (err) {
          await db.close().catch(() => {});
          throw err;
        }
      }
      // Another open may have raced us while we awaited; LevelDB's lock makes that impossible for
      // the same folder, but keep the map consistent anyway.
      shared = openCores.get(key) ?? { key, core, writer: null, views: new Set() };
      openCores.set(key, shared);
    }
    const s = shared;
    s.opening = true;
    const owner: RunOwner = { pid: process.pid, hostname: os.hostname(), command: commandLine(), startedAt: new Date().toISOString() };
    try {
      await writeFileAtomic(path.join(runDir, 'owner.json'), JSON.stringify(owner) + '\n', false);
    } catch (err) {
      s.opening = false;
      await this.release(s).catch(() => {});
      if (isErrno(err, 'EISDIR')) throw ownerIsFolder(id, runDir, 'a folder');
      throw err;
    }
    const log = new RunLog(s.core, 'write', async (l) => {
      this.logs.delete(l);
      if (s.writer === l) {
        s.writer = null;
        // Remove owner.json while still holding the lock, so a next owner's file is never deleted.
        await fsp.rm(path.join(runDir, 'owner.json'), { force: true });
      }
      await this.release(s);
    });
    s.writer = log;
    s.opening = false;
    return this.track(log);
  }

  private async release(s: Shared): Promise<void> {
    if (s.writer || s.opening || s.views.size > 0) return;
    if (openCores.get(s.key) === s) openCores.delete(s.key);
    await s.core.db.close();
  }

  private async openRead(id: string, opts: RunOpenOptions): Promise<RunLog> {
    const runDir = this.runDir(id);
    const key = path.join(await fsp.realpath(runDir), 'log');
    const shared = openCores.get(key);
    if (shared) {
      const log = new RunLog(shared.core, 'read', async (l) => {
        this.logs.delete(l);
        shared.views.delete(l);
        await this.release(shared);
      });
      shared.views.add(log);
      return this.track(log);
    }
    // committed.json first: whatever it names was in the log before it was written.
    const committed = await readCommitted(runDir, id);
    await checkLevelShape(id, key);
    // The copy goes to the store's tmp/ (hard links work there); to the system's temp folder when
    // the store cannot take it (read-only, or a full disk), named so a later command sweeps it
    // if this process dies holding it (scratch.ts).
    const inStore = path.join(this.dir, 'tmp', `read-${process.pid}-${randomBytes(6).toString('hex')}`);
    const places = (await canCreate(inStore)) ? [inStore, systemScratchPath('read')] : [systemScratchPath('read')];
    for (const copy of places) {
      let db: LevelDb | null = null;
      try {
        const shownAs = `runs/${id}/log`;
        const had = await copyLevelDb(key, copy, { runId: id, shownAs });
        // The copy is consistent: check it as a writer would check the original.
        if (had) await inspectLevelDir(id, copy, shownAs);
        db = await openLevel(copy, !had);
        const core = await RunCore.open({ runId: id, runDir, db, writable: false, options: this.runOptions(opts), committed });
        const opened = db;
        const log = new RunLog(core, 'read', async (l) => {
          this.logs.delete(l);
          try {
            await opened.close();
          } finally {
            await fsp.rm(copy, { recursive: true, force: true });
          }
        });
        return this.track(log);
      } catch (err) {
        if (db) await db.close().catch(() => {});
        await fsp.rm(copy, { recursive: true, force: true }).catch(() => {});
        if (!isDiskFull(err) || copy !== inStore) throw levelFailure(id, err, copy, key);
      }
    }
    throw new Error('unreachable');
  }

  /**
   * Deletes a run's folder (its blobs stay until collectGarbage). RunLockedError if any process,
   * this one included, has it open for writing.
   */
  async removeRun(id: string): Promise<void> {
    await this.removeRuns([id]);
  }

  /**
   * Deletes the folders of `ids` as one step (removal.ts): all of them or, if any fails a
   * precondition, none. First every run must exist (UnknownRunError); then every run's writer lock
   * is taken and held (RunLockedError naming the holder, after releasing the others, if one is
   * held); only then are the folders moved to a trash folder and deleted. A process killed mid-way
   * leaves a removal plan that the next Store.open finishes.
   */
  async removeRuns(ids: readonly string[]): Promise<void> {
    this.assertOpen();
    for (const id of ids) await this.assertRun(id);
    // Taking a lock opens the run's LevelDB, which rewrites its files. Runs whose owner.json names
    // a live process are tried first: if one is held, the command fails having opened nothing else
    // (LevelDB only rotates that run's diagnostic LOG file, as on any open attempt); if not, its
    // owner.json was stale (a dead writer's pid now used by another process).
    const suspects: string[] = [];
    for (const id of ids) if (await this.liveWriter(id)) suspects.push(id);
    const order = [...suspects, ...ids.filter((id) => !suspects.includes(id))];
    const held: HeldLock[] = [];
    try {
      for (const id of order) held.push(await this.lockRun(id));
      await removeRunFolders(this.target(), ids);
    } finally {
      for (const h of held) await h.release().catch(() => {});
    }
  }

  private target(): RemovalTarget {
    return { runsDir: path.join(this.dir, 'runs'), tmpDir: path.join(this.dir, 'tmp') };
  }

  /**
   * Takes a run's writer lock without writing owner.json (for removal): opens its LevelDB, which
   * holds LevelDB's lock until released. RunLockedError if this or another process holds it. A
   * run without a (valid) database has nothing to lock.
   */
  private async lockRun(id: string): Promise<HeldLock> {
    const key = path.join(await fsp.realpath(this.runDir(id)), 'log');
    if (openCores.get(key)) throw new RunLockedError(id, await this.readOwner(id), true);
    let db: LevelDb | null = null;
    try {
      db = await openLevel(key, false);
    } catch (err) {
      if (isLevelLocked(err)) throw new RunLockedError(id, await this.readOwner(id));
    }
    const opened = db;
    return { release: async () => void (await opened?.close()) };
  }

  /**
   * The parent recorded in the run's parent.json at creation: a run id, null for a run that is
   * not a branch, or undefined when the file is missing or unreadable (runs of older retrace).
   * Lets `rm` know a branch whose log cannot be read.
   */
  async recordedParent(id: string): Promise<string | null | undefined> {
    this.assertOpen();
    try {
      const parsed = ParentFile.safeParse(JSON.parse(await fsp.readFile(path.join(this.runDir(id), PARENT_FILE), 'utf8')));
      return parsed.success ? parsed.data.parent : undefined;
    } catch {
      return undefined;
    }
  }

  /** Bytes the run takes on disk outside the blob store (allocated blocks): its LevelDB folder,
   * committed.json and owner.json. */
  /** The run's whole folder (its LevelDB, marks, parent.json, owner.json), folders included. */
  async runBytes(id: string): Promise<{ allocated: number; content: number }> {
    this.assertOpen();
    await this.assertRun(id);
    return diskBytes(this.runDir(id));
  }

  /**
   * The summary the run's writer stored in committed.json with the mark (EventLog.setSummarizer):
   * `{seq, summary}`, or null (no summary, no mark, or an unreadable file: the caller reads the
   * log instead). One small file read; no LevelDB is opened.
   */
  async readSummary(id: string): Promise<StoredSummary | null> {
    this.assertOpen();
    return readSummaryFile(this.runDir(id));
  }

  /**
   * A fingerprint of everything an append changes: the names, sizes and mtimes of the run's
   * LevelDB files, committed.json and owner.json (a readdir and a few stats), and the next seq of
   * a writer in this process (whose buffered records are on no file yet). 'gone' for a removed run.
   */
  async changeToken(id: string): Promise<string> {
    this.assertOpen();
    const dir = this.runDir(id);
    let names: string[];
    try {
      names = (await fsp.readdir(path.join(dir, 'log'))).sort().map((x) => path.join('log', x));
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
      if (!(await this.hasRun(id))) return 'gone';
      names = [];
    }
    const parts = await Promise.all(
      [...names, 'committed.json', 'owner.json'].map(async (n) => {
        try {
          const st = await fsp.stat(path.join(dir, n));
          return `${n}:${st.size}:${st.mtimeMs}`;
        } catch (err) {
          if (isErrno(err, 'ENOENT')) return '';
          throw err;
        }
      }),
    );
    const shared = await this.sharedCore(id);
    return `${shared ? `mem:${shared.core.nextSeq}|` : ''}${parts.join('|')}`;
  }

  /** The LevelDB of run `id` open in this process, if any. */
  private async sharedCore(id: string): Promise<Shared | undefined> {
    try {
      return openCores.get(path.join(await fsp.realpath(this.runDir(id)), 'log'));
    } catch {
      return undefined;
    }
  }

  /**
   * The run's records from `from` on, as they are appended, until `signal` aborts (RunStore.follow).
   * New records are read through a read open (shared with this process's writer, else a private
   * copy), at most FOLLOW_BATCH per open. Between reads it waits for this process's writer to
   * append (its RunCore notifies) or, for another process's, for changeToken to change (polled
   * every FOLLOW_POLL_MS). Ends when the run is removed.
   */
  async *follow(id: string, from: number, signal: AbortSignal): AsyncIterable<StoredRecord> {
    this.assertOpen();
    let next = Math.max(0, from);
    while (!signal.aborted) {
      if (!(await this.hasRun(id))) return;
      const token = await this.changeToken(id);
      const batch: StoredRecord[] = [];
      try {
        const log = await this.openRun(id, 'read');
        try {
          for await (const r of log.read({ from: next })) {
            batch.push(r);
            if (batch.length >= FOLLOW_BATCH) break;
          }
        } finally {
          await log.close();
        }
      } catch (err) {
        // Removed meanwhile (its folder may vanish in the middle of taking the copy): the end.
        if (err instanceof UnknownRunError || !(await this.hasRun(id))) return;
        throw err;
      }
      for (const r of batch) {
        if (signal.aborted) return;
        yield r;
        next = r.seq + 1;
      }
      if (batch.length < FOLLOW_BATCH) await this.waitForChange(id, token, signal);
    }
  }

  /** Resolves when run `id` changes from `token` (or this process's writer appends), or on abort. */
  private waitForChange(id: string, token: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const cores = new Set<RunCore>();
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', finish);
        for (const c of cores) c.listeners.delete(finish);
        resolve();
      };
      signal.addEventListener('abort', finish, { once: true });
      if (signal.aborted) return finish();
      const poll = async (): Promise<void> => {
        if (done) return;
        const shared = await this.sharedCore(id);
        if (shared && !cores.has(shared.core)) {
          cores.add(shared.core);
          shared.core.listeners.add(finish);
        }
        const now = await this.changeToken(id).catch(() => 'error');
        if (now !== token) return finish();
        if (!done) timer = setTimeout(() => void poll(), FOLLOW_POLL_MS);
      };
      void poll();
    });
  }

  /**
   * Byte-level checks (RunStore.checkIntegrity, leveldb-fsck.ts): of one run, its folder's files,
   * marks, LevelDB files, records' checksums and keys, seq continuity and type index; of the store
   * (`null`), store.json, its folders and every blob file's hash. Changes nothing.
   */
  async checkIntegrity(runId: string | null): Promise<StoreProblem[]> {
    this.assertOpen();
    const { checkLevelStore } = await import('./leveldb-fsck.js');
    return (await checkLevelStore(this.dir, runId)).map((p) => ({
      runId: p.runId,
      kind: p.kind,
      ...(p.file !== undefined ? { file: p.file } : {}),
      ...(p.seq !== undefined ? { seq: p.seq } : {}),
      message: p.message,
    }));
  }

  /** Closes every run log opened through this Store (writers flush with sync first). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    const errors: unknown[] = [];
    for (const log of [...this.logs]) {
      try {
        await log.close();
      } catch (err) {
        errors.push(err);
      }
    }
    this.closed = true;
    if (errors.length > 0) throw errors[0];
  }
}
