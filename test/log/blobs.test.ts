import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBlobStore as BlobStore, sha256Hex } from '../../src/log/blobs.js';
import { CorruptBlobError, MissingBlobError } from '../../src/log/errors.js';
import { bytes, cleanupTempDirs, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

describe('BlobStore', () => {
  it('put returns the SHA-256 and get returns the same bytes, aligned for typed-array views', async () => {
    const blobs = new BlobStore(await tempDir());
    const f = new Float32Array([1.5, -2, 3.25]);
    const hash = await blobs.put(new Uint8Array(f.buffer));
    expect(hash).toBe(sha256Hex(new Uint8Array(f.buffer)));
    const back = await blobs.get(hash);
    expect(back.byteOffset).toBe(0);
    expect(Array.from(new Float32Array(back.buffer, 0, 3))).toEqual([1.5, -2, 3.25]);
    expect(await blobs.has(hash)).toBe(true);
    expect(await blobs.size(hash)).toBe(12);
    expect(await blobs.list()).toEqual([hash]);
    expect(blobs.pathOf(hash)).toBe(path.join(blobs.dir, hash.slice(0, 2), hash));
  });

  it('dedupes: a second put does not rewrite the file but refreshes its mtime', async () => {
    const blobs = new BlobStore(await tempDir());
    const b = bytes(1000);
    const hash = await blobs.put(b);
    const file = blobs.pathOf(hash);
    const ino = (await fsp.stat(file)).ino;
    const old = new Date(Date.now() - 3600_000);
    await fsp.utimes(file, old, old);
    expect(await blobs.put(b)).toBe(hash);
    const st = await fsp.stat(file);
    expect(st.ino).toBe(ino);
    expect(st.mtimeMs).toBeGreaterThan(old.getTime() + 1000);
    expect(await blobs.list()).toEqual([hash]);
  });

  it('many puts of the same and different blobs in parallel, from two BlobStores, are safe', async () => {
    const dir = await tempDir();
    const a = new BlobStore(dir);
    const b = new BlobStore(dir);
    const items = Array.from({ length: 20 }, (_, i) => bytes(10_000 + i, i % 5));
    const [ha, hb] = await Promise.all([a.putMany(items), b.putMany(items.slice().reverse())]);
    expect(hb.slice().reverse()).toEqual(ha);
    const distinct = [...new Set(ha)].sort();
    expect(await a.list()).toEqual(distinct);
    for (let i = 0; i < items.length; i++) expect(Buffer.from(await a.get(ha[i])).equals(Buffer.from(items[i]))).toBe(true);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]); // no temp files left behind
  });

  it('a missing blob is a MissingBlobError naming the hash', async () => {
    const blobs = new BlobStore(await tempDir());
    const hash = sha256Hex(bytes(10));
    await expect(blobs.get(hash)).rejects.toThrow(MissingBlobError);
    await expect(blobs.get(hash)).rejects.toThrow(hash);
    await expect(blobs.size(hash)).rejects.toThrow(MissingBlobError);
    expect(await blobs.has(hash)).toBe(false);
    expect(await blobs.delete(hash)).toBe(false);
    expect(() => blobs.pathOf('../etc/passwd')).toThrow(TypeError);
  });

  it('a blob whose bytes changed is a CorruptBlobError naming the hash', async () => {
    const blobs = new BlobStore(await tempDir());
    const hash = await blobs.put(bytes(4096));
    const file = blobs.pathOf(hash);
    const buf = await fsp.readFile(file);
    buf[100] ^= 1;
    await fsp.writeFile(file, buf);
    const err = await blobs.get(hash).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptBlobError);
    expect((err as CorruptBlobError).hash).toBe(hash);
    expect((err as Error).message).toContain(hash);
  });

  it('a damaged blob of the wrong size is replaced by the next put of the right bytes', async () => {
    const blobs = new BlobStore(await tempDir());
    const b = bytes(5000);
    const hash = await blobs.put(b);
    await fsp.writeFile(blobs.pathOf(hash), b.subarray(0, 100)); // torn
    await blobs.put(b);
    expect(Buffer.from(await blobs.get(hash)).equals(Buffer.from(b))).toBe(true);
  });

  it('a damaged blob of the right size is not reused: the next put verifies its content and rewrites it', async () => {
    const blobs = new BlobStore(await tempDir());
    const b = bytes(4096);
    const hash = await blobs.put(b);
    const file = blobs.pathOf(hash);
    // One byte flipped, size unchanged: only the content can tell.
    const damaged = Buffer.from(await fsp.readFile(file));
    damaged[1234] ^= 0xff;
    await fsp.writeFile(file, damaged);
    await expect(blobs.get(hash)).rejects.toThrow(CorruptBlobError);
    // A second BlobStore (a new process: nothing cached) and one that wrote it both verify.
    for (const store of [new BlobStore(path.dirname(blobs.dir)), blobs]) {
      expect(await store.put(b)).toBe(hash);
      expect(sha256Hex(await fsp.readFile(file))).toBe(hash);
      expect(await store.get(hash)).toEqual(b);
      await fsp.writeFile(file, damaged);
    }
    // The group commit (checkpoints) too, with the hash given by the caller.
    expect(await blobs.putMany([b], [hash])).toEqual([hash]);
    expect(await blobs.get(hash)).toEqual(b);
  });

  it('delete removes a blob', async () => {
    const blobs = new BlobStore(await tempDir());
    const hash = await blobs.put(bytes(10));
    expect(await blobs.delete(hash)).toBe(true);
    expect(await blobs.has(hash)).toBe(false);
    expect(await blobs.list()).toEqual([]);
  });

  it('handles a 40 MB tensor', async () => {
    const blobs = new BlobStore(await tempDir());
    const big = new Float32Array(10 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 997) big[i] = i;
    const b = new Uint8Array(big.buffer);
    const hash = await blobs.put(b);
    expect(await blobs.size(hash)).toBe(40 * 1024 * 1024);
    const back = await blobs.get(hash);
    expect(new Float32Array(back.buffer, 0, big.length)[997 * 5]).toBe(997 * 5);
  });
});
