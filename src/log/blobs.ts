// Content-addressed blob files: <store>/blobs/<hh>/<sha256hex>, where hh is the hash's first two hex
// digits. A blob is written to <store>/tmp/, fsynced, renamed into place and its directory fsynced,
// so it is durable before put() resolves — before the event naming it is appended. rename() is
// atomic, so processes putting the same blob at the same time are safe: each writes its own temp
// file and the last rename wins with identical bytes.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CorruptBlobError, MissingBlobError, UnreadableBlobError } from './errors.js';
import { NotRegularFileError, readRegularFile } from './regular-file.js';
import { isErrno } from './processes.js';

const HASH_RE = /^[0-9a-f]{64}$/;

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

/** At most `n` tasks at once; the rest wait in FIFO order. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly n: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

export interface BlobStoreOptions {
  /** How many blob files are written at once (default 4). */
  concurrency?: number;
}

export interface BlobStat {
  size: number;
  /** Last write, or last put() that found it already there (used by gc's grace period). */
  mtimeMs: number;
}

export class BlobStore {
  /** `<store>/blobs` */
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly limiter: Limiter;
  /** Hashes this process has written or made sure are durable: a second put() of one is free. */
  private readonly durable = new Set<string>();

  /** `storeDir` is the store's root; blobs live in `<storeDir>/blobs`, temp files in `<storeDir>/tmp`. */
  constructor(storeDir: string, opts: BlobStoreOptions = {}) {
    this.dir = path.join(storeDir, 'blobs');
    this.tmpDir = path.join(storeDir, 'tmp');
    this.limiter = new Limiter(Math.max(1, opts.concurrency ?? 4));
  }

  /** Where a blob's file is (whether or not it exists). */
  pathOf(hash: string): string {
    checkHash(hash);
    return path.join(this.dir, hash.slice(0, 2), hash);
  }

  /**
   * Stores `bytes` and returns their SHA-256 hex. Idempotent: a blob already present (with the
   * right size) is not rewritten, only its mtime is refreshed so a concurrent gc sees it as young.
   * Resolves once the blob is durable. Calls may run in parallel; disk writes are limited to
   * `concurrency` at once. `knownHash`: the caller's SHA-256 of `bytes`, to hash them only once
   * (a wrong one files the bytes under a name that get() then reports as corrupt).
   */
  async put(bytes: Uint8Array, knownHash?: string): Promise<string> {
    return (await this.putMany([bytes], knownHash === undefined ? undefined : [knownHash]))[0]!;
  }

  /**
   * put() of each, as one group commit; hashes in input order. Every temp file is written first
   * (while the hashes may still be being computed: `hashes` may hold promises), then all are
   * fsynced at once, renamed into place, and each directory touched is fsynced once. Many small
   * commits of one file each cost ~3x one commit of the same bytes on ext4; the group costs about
   * what writing them to one file and fsyncing it does. Every blob is durable when this resolves,
   * exactly as with put().
   */
  async putMany(items: readonly Uint8Array[], hashes?: ReadonlyArray<string | Promise<string>>): Promise<string[]> {
    if (hashes !== undefined && hashes.length !== items.length) throw new TypeError('putMany: one hash per item');
    // Observed from the start: a hash that fails while the temp files are written is this call's error.
    const hashed = Promise.all(items.map((bytes, i) => hashes?.[i] ?? sha256Hex(bytes)));
    hashed.catch(() => {});
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const temps = items.map(() => path.join(this.tmpDir, `blob-${process.pid}-${randomBytes(6).toString('hex')}`));
    const renamed = new Set<number>();
    // 1. Temp files, written without fsync, while the caller's hashes are being computed.
    const written = items.map((bytes, i) => this.limiter.run(() => writeTemp(temps[i]!, bytes)));
    try {
      const names = await hashed;
      for (const h of names) checkHash(h);
      await Promise.all(written);
      // 2. Blobs already stored (or twice in this batch) are not rewritten.
      const todo: number[] = [];
      const seen = new Set<string>();
      await Promise.all(
        names.map(async (hash, i) => {
          if (seen.has(hash) || (await this.alreadyStored(hash, items[i]!.byteLength))) return;
          seen.add(hash);
          todo.push(i);
        }),
      );
      // 3. Data durable, then the names: fsync every new temp file, rename it in, fsync each
      //    directory once (a new blobs/<hh>/ also in its parent).
      await Promise.all(todo.map((i) => this.limiter.run(() => fsyncFile(temps[i]!))));
      const dirs = new Set<string>();
      const parents = new Set<string>();
      await Promise.all(
        todo.map(async (i) => {
          const file = this.pathOf(names[i]!);
          const dir = path.dirname(file);
          if ((await fsp.mkdir(dir, { recursive: true })) !== undefined) parents.add(path.dirname(dir));
          await fsp.rename(temps[i]!, file);
          renamed.add(i);
          dirs.add(dir);
        }),
      );
      await Promise.all([...parents].map((d) => fsyncDir(d)));
      await Promise.all([...dirs].map((d) => this.limiter.run(() => fsyncDir(d))));
      for (const i of todo) this.durable.add(names[i]!);
      return names;
    } finally {
      await Promise.allSettled(written);
      await Promise.all(temps.map((t, i) => (renamed.has(i) ? undefined : fsp.rm(t, { force: true }))));
    }
  }

  /** True when the blob is there with the right size (its mtime refreshed, its directory entry
   * made durable once per process); false when it is missing or damaged (then it is replaced). */
  private async alreadyStored(hash: string, size: number): Promise<boolean> {
    const file = this.pathOf(hash);
    try {
      const st = await fsp.stat(file);
      if (st.size !== size) return false; // a damaged blob: replaced (rename is atomic)
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
    let buf: Buffer;
    try {
      buf = await readRegularFile(file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new MissingBlobError(hash);
      if (err instanceof NotRegularFileError) throw new UnreadableBlobError(hash, file, `is ${err.what}, not a file`);
      if (isErrno(err, 'ENOTDIR')) throw new UnreadableBlobError(hash, file, `cannot be reached: ${path.dirname(file)} (or a folder above it) is a file, not a folder`);
      throw err;
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

  /** Every blob's hash, sorted. */
  async list(): Promise<string[]> {
    let shards: string[];
    try {
      shards = await fsp.readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: string[] = [];
    for (const shard of shards.sort()) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.dir, shard));
      } catch (err) {
        if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) continue;
        throw err;
      }
      for (const n of names.sort()) if (HASH_RE.test(n) && n.startsWith(shard)) out.push(n);
    }
    return out;
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
