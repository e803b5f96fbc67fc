// Content-addressed blob files: <store>/blobs/<hh>/<sha256hex>, where hh is the hash's first two hex
// digits. A blob is written to <store>/tmp/, fsynced, renamed into place and its directory fsynced,
// so it is durable before put() resolves — before the event naming it is appended. rename() is
// atomic, so processes putting the same blob at the same time are safe: each writes its own temp
// file and the last rename wins with identical bytes.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CorruptBlobError, MissingBlobError } from './errors.js';

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

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
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
   * `concurrency` at once.
   */
  async put(bytes: Uint8Array): Promise<string> {
    const hash = sha256Hex(bytes);
    await this.limiter.run(() => this.write(hash, bytes));
    return hash;
  }

  /** put() of each, in parallel (bounded by `concurrency`); hashes in input order. */
  putMany(items: readonly Uint8Array[]): Promise<string[]> {
    return Promise.all(items.map((b) => this.put(b)));
  }

  private async write(hash: string, bytes: Uint8Array): Promise<void> {
    const file = this.pathOf(hash);
    const dir = path.dirname(file);
    try {
      const st = await fsp.stat(file);
      if (st.size === bytes.byteLength) {
        const now = new Date();
        await fsp.utimes(file, now, now).catch(() => {});
        if (!this.durable.has(hash)) {
          // Another process may have renamed it in but not yet fsynced the directory.
          await fsyncDir(dir);
          this.durable.add(hash);
        }
        return;
      }
      // Wrong size: a damaged blob. Replace it (rename is atomic).
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const tmp = path.join(this.tmpDir, `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
      await fh.close();
    } catch (err) {
      await fh.close().catch(() => {});
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    try {
      const created = await fsp.mkdir(dir, { recursive: true });
      if (created !== undefined) await fsyncDir(path.dirname(dir)); // a new blobs/<hh>/ entry
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(dir);
    this.durable.add(hash);
  }

  /**
   * The blob's bytes, verified against its hash (MissingBlobError / CorruptBlobError). The bytes
   * start at offset 0 of their own ArrayBuffer, so `new Float32Array(b.buffer, 0, n)` works.
   */
  async get(hash: string): Promise<Uint8Array> {
    const file = this.pathOf(hash);
    let buf: Buffer;
    try {
      buf = await fsp.readFile(file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new MissingBlobError(hash);
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
