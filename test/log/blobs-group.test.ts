// BlobStore.putMany as a group commit (temp files first, then fsync, rename, directory fsync) and
// persistTensors on top of it: same results as put() one by one, hashes that arrive later, no temp
// file left behind when something fails.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileBlobStore as BlobStore, sha256Hex } from '../../src/log/blobs.js';
import { persistTensors } from '../../src/run/snapshots.js';
import { bytes, cleanupTempDirs, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

describe('BlobStore.putMany', () => {
  it('stores every item under its SHA-256, with hashes given as values or promises, duplicates once', async () => {
    const dir = await tempDir();
    const blobs = new BlobStore(dir);
    const items = [bytes(10, 1), bytes(5 << 20, 2), bytes(10, 1), bytes(0, 3)];
    const expected = items.map(sha256Hex);
    const late = new Promise<string>((resolve) => setTimeout(() => resolve(expected[1]!), 20));
    expect(await blobs.putMany(items, [expected[0]!, late, Promise.resolve(expected[2]!), expected[3]!])).toEqual(expected);
    for (const [i, h] of expected.entries()) expect(Buffer.from(await blobs.get(h)).equals(Buffer.from(items[i]!))).toBe(true);
    expect((await blobs.list()).length).toBe(3);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    // Again: nothing is rewritten (the files keep their inode).
    const ino = (await fsp.stat(blobs.pathOf(expected[1]!))).ino;
    expect(await blobs.putMany(items)).toEqual(expected);
    expect((await fsp.stat(blobs.pathOf(expected[1]!))).ino).toBe(ino);
  });

  it('replaces a damaged blob of the wrong size', async () => {
    const blobs = new BlobStore(await tempDir());
    const b = bytes(1000, 4);
    const h = await blobs.put(b);
    await fsp.writeFile(blobs.pathOf(h), 'short');
    await blobs.putMany([b]);
    expect(Buffer.from(await blobs.get(h)).equals(Buffer.from(b))).toBe(true);
  });

  it('a failing hash fails the call, stores nothing and leaves no temp file', async () => {
    const dir = await tempDir();
    const blobs = new BlobStore(dir);
    const items = [bytes(100, 5), bytes(100, 6)];
    await expect(blobs.putMany(items, [sha256Hex(items[0]!), Promise.reject(new Error('boom'))])).rejects.toThrow('boom');
    await expect(blobs.putMany(items, ['not-a-hash', sha256Hex(items[1]!)])).rejects.toThrow(/SHA-256/);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    expect(await blobs.list()).toEqual([]);
  });

  it('persistTensors: refs name each tensor by the SHA-256 of its bytes', async () => {
    const blobs = new BlobStore(await tempDir());
    const tensors = [
      { name: 'a/kernel', shape: [3, 2], dtype: 'float32' as const, bytes: bytes(24, 7) },
      { name: 'a/bias', shape: [2], dtype: 'float32' as const, bytes: bytes(8, 8) },
      { name: 'big', shape: [3 << 20], dtype: 'float32' as const, bytes: bytes(12 << 20, 9) },
    ];
    const refs = await persistTensors(blobs, tensors);
    expect(refs.map((r) => [r.name, r.hash, r.bytes])).toEqual(tensors.map((t) => [t.name, sha256Hex(t.bytes), t.bytes.byteLength]));
    // The big tensor is its own blob; the two small ones are in one pack blob (src/log/packs.ts).
    expect(await blobs.has(refs[2]!.hash)).toBe(true);
    expect(refs[2]!.pack).toBeUndefined();
    expect(refs[0]!.pack).toEqual({ hash: refs[1]!.pack!.hash, offset: 0 });
    expect(refs[1]!.pack!.offset).toBe(24);
    expect(await blobs.list()).toEqual([refs[1]!.pack!.hash, refs[2]!.hash].sort());
  });
});
