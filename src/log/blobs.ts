// Content-addressed blob files: <store>/blobs/<hh>/<sha256hex>, where hh is the hash's first two hex
// digits. A blob is written to <store>/tmp/, fsynced, renamed into place and its directory fsynced,
// so it is durable before put() resolves — before the event naming it is appended. rename() is
// atomic, so processes putting the same blob at the same time are safe: each writes its own temp
// file and the last rename wins with identical bytes.
//
// Garbage collection (gc.ts) may run at any time, in any process: a writer names the blobs it is
// about to use in a BlobIntent before it checks or writes them (blob-intents.ts), and gc moves a
// blob it means to delete to a condemned name (<hash>.gc-<pid>-<random>, beside it) before its last
// check, so a writer that looks for the blob after that finds it missing and writes it again.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { BlobIntent } from './blob-intents.js';
import { CorruptBlobError, MissingBlobError, UnreadableBlobError } from './errors.js';
import { NotRegularFileError, readRegularFile } from './regular-file.js';
import { isErrno } from './processes.js';
import type { BlobStore, SweepOptions } from '../storage/types.js';
import { Limiter } from './limiter.js';
import { sweepBlobs, type FileSweepOptions, type FileSweepResult } from './blob-sweep.js';

export type { BlobStore } from '../storage/types.js';

const HASH_RE = /^[0-9a-f]{64}$/;
/** A blob gc has moved aside before deciding (see gc.ts): `<hash>.gc-<pid>-<random>`. */
const CONDEMNED_RE = /^([0-9a-f]{64})\.gc-\d+-[0-9a-f]+$/;

export function isBlobHash(s: string): boolean {
  return HASH_RE.test(s);
}

function checkHash(hash: string): void {
  if (!HASH_RE.test(hash)) throw new TypeError(`${JSON.stringify(hash)} is not a SHA-256 hash (64 lowercase hex digits)`);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const HASH_SLICE = 4 << 20;

/**
 * SHA-256 hex of the concatenation of `parts`, hashed in 4 MiB slices with a yield to the event
 * loop between slices: file I/O in flight (other blobs' writes and fsyncs) keeps moving while a
 * large tensor is hashed, instead of waiting for the whole hash.
 */
export async function sha256HexAsync(parts: readonly Uint8Array[]): Promise<string> {
  const h = createHash('sha256');
  for (const bytes of parts) {
    for (let off = 0; off < bytes.byteLength; off += HASH_SLICE) {
      if (off > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      h.update(bytes.subarray(off, Math.min(bytes.byteLength, off + HASH_SLICE)));
    }
  }
  return h.digest('hex');
}

/** fsync a directory, so a rename/create/unlink in it survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates `file` (it must not exist) with `bytes`, not fsynced. */
async function writeTemp(file: string, bytes: Uint8Array): Promise<void> {
  const fh = await fsp.open(file, 'wx');
  try {
    // writeFile's 512 KiB writes: on this kind of disk measurably faster than one huge write().
    await fh.writeFile(bytes);
  } finally {
    await fh.close();
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `file` atomically: a temp file beside it, fsync, rename over `file`, fsync the directory
 * (the two fsyncs only when `durable`). Readers see the old or the new content, never a mix.
 */
export async function writeFileAtomic(file: string, content: string | Uint8Array, durable = true): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'wx');
  try {
    await fh.writeFile(content);
    if (durable) await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncDir(path.dirname(file));
}


export interface BlobStoreOptions {
  /** How many blob files are written at once (default 4). */
  concurrency?: number;
  /**
   * Tests only: awaited at each step of putMany's protocol (`put:intent`, `put:check <hash>`,
   * `put:rename <hash>`), so a test can interleave gc and writers at every such point.
   */
  pause?: (point: string) => Promise<void>;
}

export interface BlobStat {
  size: number;
  /** Last write, or last put() that found it already there (used by gc's grace period). */
  mtimeMs: number;
}

/** The blob store of a store folder: one file per blob (see the top of this file). */
export class FileBlobStore implements BlobStore {
  /** `<store>/blobs` */
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly limiter: Limiter;
  private readonly pause: (point: string) => Promise<void> | void;
  /** Promise.all over `items`; one after the other when a test pauses the steps. */
  private readonly each: <T, R>(items: readonly T[], fn: (item: T) => Promise<R>) => Promise<R[]>;
  /** Hashes this process has written or made sure are durable: a second put() of one is free. */
  private readonly durable = new Set<string>();

  /** `storeDir` is the store's root; blobs live in `<storeDir>/blobs`, temp files in `<storeDir>/tmp`. */
  constructor(storeDir: string, opts: BlobStoreOptions = {}) {
    this.dir = path.join(storeDir, 'blobs');
    this.tmpDir = path.join(storeDir, 'tmp');
    this.limiter = new Limiter(Math.max(1, opts.concurrency ?? 4));
    this.pause = opts.pause ?? (() => {});
    this.each = opts.pause
      ? async (items, fn) => {
          const out = [];
          for (const item of items) out.push(await fn(item));
          return out;
        }
      : (items, fn) => Promise.all(items.map(fn));
  }

  /** Where a blob's file is (whether or not it exists). */
  pathOf(hash: string): string {
    checkHash(hash);
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  /**
   * A new intent for the blobs of one event (see blob-intents.ts): pass it to putMany(), append
   * the event, and release() it once the event is durable.
   */
  intent(runId: string | null = null): BlobIntent {
    return new BlobIntent(this.dir, runId);
  }

  /**
   * Stores `bytes` and returns their SHA-256 hex. Idempotent: a blob already present with exactly
   * these bytes is not rewritten, only its mtime is refreshed; one with other bytes (damaged) is
   * replaced. Resolves once the blob is durable. Calls may run in parallel; disk writes are limited
   * to `concurrency` at once. `knownHash`: the caller's SHA-256 of `bytes`, to hash them only once
   * (a wrong one files the bytes under a name that get() then reports as corrupt). `intent`: see
   * putMany().
   */
  async put(bytes: Uint8Array, knownHash?: string, intent?: BlobIntent): Promise<string> {
    return (await this.putMany([bytes], knownHash === undefined ? undefined : [knownHash], intent))[0]!;
  }

  /**
   * put() of each, as one group commit; hashes in input order. Every temp file is written first
   * (while the hashes may still be being computed: `hashes` may hold promises), then all are
   * fsynced at once, renamed into place, and each directory touched is fsynced once. Many small
   * commits of one file each cost ~3x one commit of the same bytes on ext4; the group costs about
   * what writing them to one file and fsyncing it does. Every blob is durable when this resolves,
   * exactly as with put().
   *
   * `intent`: the writer's intent for the event that will name these blobs; every hash is added
   * to it before any blob is checked or renamed in, and it stays held when this resolves (the
   * caller releases it after the event is durable). Without one, a private intent covers this call
   * only: afterwards only gc's grace period protects blobs no event names yet.
   */
  async putMany(items: readonly Uint8Array[], hashes?: ReadonlyArray<string | Promise<string>>, intent?: BlobIntent): Promise<string[]> {
    if (hashes !== undefined && hashes.length !== items.length) throw new TypeError('putMany: one hash per item');
    // Observed from the start: a hash that fails while the temp files are written is this call's error.
    const hashed = Promise.all(items.map((bytes, i) => hashes?.[i] ?? sha256Hex(bytes)));
    hashed.catch(() => {});
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const temps = items.map(() => path.join(this.tmpDir, `blob-${process.pid}-${randomBytes(6).toString('hex')}`));
    const renamed = new Set<number>();
    const own = intent === undefined ? this.intent() : null;
    // 1. Temp files, written without fsync, while the caller's hashes are being computed.
    const written = items.map((bytes, i) => this.limiter.run(() => writeTemp(temps[i]!, bytes)));
    try {
      const names = await hashed;
      for (const h of names) checkHash(h);
      await Promise.all(written);
      // 2. The intent names every blob before any is looked at: from here on no gc deletes them.
      await this.pause('put:intent');
      await (intent ?? own)!.add(names);
      // 3. Blobs already stored with these exact bytes (or twice in this batch) are not rewritten.
      const todo: number[] = [];
      const seen = new Set<string>();
      for (const [i, hash] of names.entries()) {
        if (seen.has(hash)) continue;
        seen.add(hash);
        todo.push(i);
      }
      const stored = await this.each(todo, async (i) => {
        await this.pause(`put:check ${names[i]!}`);
        return this.limiter.run(() => this.alreadyStored(names[i]!, items[i]!));
      });
      todo.splice(0, todo.length, ...todo.filter((_, k) => !stored[k]));
      // 4. Data durable, then the names: fsync every new temp file, rename it in, fsync each
      //    directory once (a new blobs/<hh>/ also in its parent).
      await Promise.all(todo.map((i) => this.limiter.run(() => fsyncFile(temps[i]!))));
      const dirs = new Set<string>();
      const parents = new Set<string>();
      await this.each(todo, async (i) => {
          const file = this.pathOf(names[i]!);
          const dir = path.dirname(file);
          if ((await fsp.mkdir(dir, { recursive: true })) !== undefined) parents.add(path.dirname(dir));
          await this.pause(`put:rename ${names[i]!}`);
          await fsp.rename(temps[i]!, file);
          renamed.add(i);
          dirs.add(dir);
      });
      await Promise.all([...parents].map((d) => fsyncDir(d)));
      await Promise.all([...dirs].map((d) => this.limiter.run(() => fsyncDir(d))));
      for (const i of todo) this.durable.add(names[i]!);
      return names;
    } finally {
      await Promise.allSettled(written);
      await Promise.all(temps.map((t, i) => (renamed.has(i) ? undefined : fsp.rm(t, { force: true }))));
      await own?.release();
    }
  }

  /**
   * True when the blob is there with exactly `bytes` (its mtime refreshed, its directory entry made
   * durable once per process); false when it is missing, condemned by a gc, or damaged — then it is
   * written again (rename is atomic). The file's content is compared, not its size: a same-size
   * damaged blob must not be named by a new checkpoint.
   */
  private async alreadyStored(hash: string, bytes: Uint8Array): Promise<boolean> {
    const file = this.pathOf(hash);
    try {
      const st = await fsp.stat(file);
      if (st.size !== bytes.byteLength) return false;
      const existing = await fsp.readFile(file);
      if (Buffer.compare(existing, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) !== 0) return false;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    const now = new Date();
    await fsp.utimes(file, now, now).catch(() => {});
    if (!this.durable.has(hash)) {
      // Another process may have renamed it in but not yet fsynced the directory.
      await fsyncDir(path.dirname(file));
      this.durable.add(hash);
    }
    return true;
  }

  /**
   * The blob's bytes, verified against its hash (MissingBlobError / CorruptBlobError). The bytes
   * start at offset 0 of their own ArrayBuffer, so `new Float32Array(b.buffer, 0, n)` works.
   */
  async get(hash: string): Promise<Uint8Array> {
    const file = this.pathOf(hash);
    let buf: Buffer | null = null;
    try {
      buf = await readRegularFile(file);
    } catch (err) {
      if (err instanceof NotRegularFileError) throw new UnreadableBlobError(hash, file, `is ${err.what}, not a file`);
      if (isErrno(err, 'ENOTDIR')) throw new UnreadableBlobError(hash, file, `cannot be reached: ${path.dirname(file)} (or a folder above it) is a file, not a folder`);
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    // A gc may hold it aside this moment (it puts back what is named), or one was killed doing so.
    buf ??= await this.readCondemned(hash);
    if (buf === null) {
      try {
        buf = await fsp.readFile(file); // put back meanwhile
      } catch (err) {
        if (isErrno(err, 'ENOENT')) throw new MissingBlobError(hash);
        throw err;
      }
    }
    const actual = sha256Hex(buf);
    if (actual !== hash) throw new CorruptBlobError(hash, actual);
    if (buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength) {
      return new Uint8Array(buf.buffer, 0, buf.byteLength);
    }
    return new Uint8Array(buf); // copy into a fresh, exactly sized ArrayBuffer
  }

  async has(hash: string): Promise<boolean> {
    try {
      await fsp.access(this.pathOf(hash));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async stat(hash: string): Promise<BlobStat> {
    try {
      const st = await fsp.stat(this.pathOf(hash));
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new MissingBlobError(hash);
      throw err;
    }
  }

  /** Size in bytes (MissingBlobError if absent). */
  async size(hash: string): Promise<number> {
    return (await this.stat(hash)).size;
  }

  /** Bytes the blob's file takes on disk: its allocated blocks (st.blocks × 512), not its length
   * (MissingBlobError if absent). */
  async allocatedBytes(hash: string): Promise<number> {
    try {
      return (await fsp.stat(this.pathOf(hash))).blocks * 512;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new MissingBlobError(hash);
      throw err;
    }
  }

  /** Re-reads and re-hashes the blob: null when whole, else what is wrong in one line. */
  async verify(hash: string): Promise<string | null> {
    try {
      await this.get(hash);
      return null;
    } catch (err) {
      if (err instanceof MissingBlobError || err instanceof CorruptBlobError || err instanceof UnreadableBlobError) return err.message;
      throw err;
    }
  }

  /** Deletes the blobs no run references: condemn, check again, unlink (blob-sweep.ts). */
  sweep(opts: SweepOptions & FileSweepOptions): Promise<FileSweepResult> {
    return sweepBlobs(this, opts);
  }

  /** Every blob's hash, sorted. */
  async list(): Promise<string[]> {
    return (await this.shardEntries(HASH_RE)).map((e) => e.name);
  }

  /** The files in the shard folders whose names match `re` and start with their shard, sorted. */
  private async shardEntries(re: RegExp): Promise<Array<{ shard: string; name: string }>> {
    let shards: string[];
    try {
      shards = await fsp.readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: Array<{ shard: string; name: string }> = [];
    for (const shard of shards.sort()) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.dir, shard));
      } catch (err) {
        if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) continue;
        throw err;
      }
      for (const name of names.sort()) if (re.test(name) && name.startsWith(shard)) out.push({ shard, name });
    }
    return out;
  }

  /** The bytes of a condemned copy of `hash` (see condemn()), or null if there is none. */
  private async readCondemned(hash: string): Promise<Buffer | null> {
    const dir = path.dirname(this.pathOf(hash));
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
    for (const n of names) {
      if (CONDEMNED_RE.exec(n)?.[1] !== hash) continue;
      try {
        return await fsp.readFile(path.join(dir, n));
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    return null;
  }

  /**
   * gc's first step to delete a blob: renames it to a condemned name beside it and returns that
   * path (null if the blob is gone). From then on a writer looking for the blob finds it missing
   * and writes it again; get() still reads the condemned copy.
   */
  async condemn(hash: string): Promise<string | null> {
    const file = this.pathOf(hash);
    const aside = `${file}.gc-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      await fsp.rename(file, aside);
      return aside;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  /**
   * Puts a condemned blob back under its name (unless a writer has written it again meanwhile:
   * a hard link never replaces a file), durably, and removes the condemned name.
   */
  async restore(condemned: string): Promise<void> {
    const m = CONDEMNED_RE.exec(path.basename(condemned));
    if (!m) throw new TypeError(`${condemned} is not a condemned blob`);
    const file = this.pathOf(m[1]!);
    try {
      await fsp.link(condemned, file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // already restored or removed by another gc
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    await fsyncDir(path.dirname(file));
    await fsp.rm(condemned, { force: true });
  }

  /** Deletes a condemned blob for good (gc's last step); false if it was not there. */
  async unlinkCondemned(condemned: string): Promise<boolean> {
    if (!CONDEMNED_RE.test(path.basename(condemned))) throw new TypeError(`${condemned} is not a condemned blob`);
    try {
      await fsp.unlink(condemned);
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /** Paths of every condemned blob (left by a gc that is running or was killed), sorted. */
  async listCondemned(): Promise<string[]> {
    return (await this.shardEntries(CONDEMNED_RE)).map((e) => path.join(this.dir, e.shard, e.name));
  }

  /** Removes a blob; false if it was not there. */
  async delete(hash: string): Promise<boolean> {
    try {
      await fsp.unlink(this.pathOf(hash));
      this.durable.delete(hash);
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }
}
