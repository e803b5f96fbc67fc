// The LevelDB + files store against the storage contract, and what only it has: the type index
// of logs written before it, readers that do not scan, allocated bytes.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../src/log/codec.js';
import { CorruptLogError } from '../../src/log/errors.js';
import { FENCE_KEY, INDEX_MARKER_KEY, INDEX_PREFIX } from '../../src/log/run-log.js';
import { Store } from '../../src/log/store.js';
import { openRunStore } from '../../src/storage/open.js';
import { cleanupTempDirs, collect, killAndWait, spawnFixture, tempDir, waitForLine } from '../log/helpers.js';
import { runStoreContract } from './contract.js';

afterAll(cleanupTempDirs);

runStoreContract('leveldb', async () => {
  const dir = await tempDir('retrace-contract-');
  let store = await Store.open(dir);
  return {
    store,
    async reopen() {
      await store.close();
      store = await Store.open(dir);
      return store;
    },
  };
});

async function rawKeys(dir: string, runId: string): Promise<string[]> {
  const db = new ClassicLevel<string, string>(path.join(dir, 'runs', runId, 'log'));
  await db.open();
  try {
    return await db.keys().all();
  } finally {
    await db.close();
  }
}

describe('the LevelDB store', () => {
  it('is what openRunStore opens for a folder; its kind and location', async () => {
    const dir = await tempDir();
    const s = await openRunStore(dir);
    expect(s.kind).toBe('leveldb');
    expect(s.location).toBe(path.resolve(dir));
    expect(s).toBeInstanceOf(Store);
    await s.close();
  });

  it('writes the index keys in the batch of their record, beside the seq keys', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const w = await s.createRun('a');
    await w.append([{ type: 'run.created', data: {} }, { type: 'step.finished', data: 1 }, { type: 'checkpoint.committed', data: 2 }], { sync: true });
    await w.close();
    await s.close();
    const keys = await rawKeys(dir, 'a');
    expect(keys).toEqual([encodeKey(0), encodeKey(1), encodeKey(2), FENCE_KEY, INDEX_MARKER_KEY, `${INDEX_PREFIX}checkpoint.committed:${encodeKey(2)}`, `${INDEX_PREFIX}run.created:${encodeKey(0)}`].sort());
  });

  it('a log written before the index reads by scanning, and its first writer indexes it', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const w = await s.createRun('a');
    await w.append(Array.from({ length: 30 }, (_, i) => ({ type: i % 7 === 0 ? 'checkpoint.committed' : 'step.finished', data: i })), { sync: true });
    await w.close();
    await s.close();
    // What an older retrace leaves: no index keys, no marker.
    const db = new ClassicLevel<string, string>(path.join(dir, 'runs', 'a', 'log'));
    await db.open();
    for (const k of await db.keys().all()) if (!/^\d+$/.test(k)) await db.del(k);
    await db.close();
    const s2 = await Store.open(dir);
    const r = await s2.openRun('a', 'read');
    expect((await collect(r.readIndexed('checkpoint.committed'))).map((x) => x.seq)).toEqual([0, 7, 14, 21, 28]);
    await r.close();
    expect((await rawKeys(dir, 'a')).filter((k) => k.startsWith(INDEX_PREFIX))).toEqual([]);
    const w2 = await s2.openRun('a', 'write');
    await w2.close();
    await s2.close();
    const keys = await rawKeys(dir, 'a');
    expect(keys).toContain(INDEX_MARKER_KEY);
    expect(keys.filter((k) => k.startsWith(INDEX_PREFIX)).length).toBe(5);
    const s3 = await Store.open(dir);
    const r3 = await s3.openRun('a', 'read');
    expect((await collect(r3.readIndexed('checkpoint.committed', { from: 8, to: 21 }))).map((x) => x.seq)).toEqual([14, 21]);
    await r3.close();
    await s3.close();
  });

  it('an index entry naming a record of another type, or a missing one, is corruption when read', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const w = await s.createRun('a');
    await w.append(Array.from({ length: 10 }, (_, i) => ({ type: i === 3 ? 'checkpoint.committed' : 'step.finished', data: i })), { sync: true });
    await w.close();
    await s.close();
    const db = new ClassicLevel<string, string>(path.join(dir, 'runs', 'a', 'log'));
    await db.open();
    await db.put(`${INDEX_PREFIX}checkpoint.committed:${encodeKey(5)}`, '');
    await db.close();
    const s2 = await Store.open(dir);
    const r = await s2.openRun('a', 'read');
    const err = await collect(r.readIndexed('checkpoint.committed')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptLogError);
    expect((err as Error).message).toMatch(/event 5 is a step.finished, but the checkpoint.committed index names it/);
    await r.close();
    await s2.close();
  });

  it('a reader opens without reading the records: a damaged record far from the range read is not met', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const w = await s.createRun('a');
    await w.append(Array.from({ length: 100 }, (_, i) => ({ type: 'step.finished', data: i })), { sync: true });
    await w.close();
    await s.close();
    const db = new ClassicLevel<string, string>(path.join(dir, 'runs', 'a', 'log'));
    await db.open();
    await db.put(encodeKey(10), 'garbage that is not a record');
    await db.close();
    const s2 = await Store.open(dir);
    const r = await s2.openRun('a', 'read');
    expect((await collect(r.read({ from: 90 }))).length).toBe(10);
    await expect(collect(r.read({ from: 5, to: 15 }))).rejects.toThrow(/event 10 is corrupt/);
    await r.close();
    await s2.close();
  });

  it('runBytes and allocatedBytes count allocated blocks, not content length', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const h = await s.blobs.put(new Uint8Array([1, 2, 3]));
    const st = await fsp.stat(s.blobs.pathOf(h));
    expect(await s.blobs.allocatedBytes(h)).toBe(st.blocks * 512);
    expect(await s.blobs.size(h)).toBe(3);
    const w = await s.createRun('a');
    await w.append([{ type: 'step.finished', data: 1 }], { sync: true });
    await w.close();
    const run = await s.runBytes('a');
    expect(run.allocated % 512).toBe(0);
    expect(run.content).toBeGreaterThan(0);
    expect(run.allocated).toBeGreaterThan(run.content);
    await s.close();
  });

  it('checkIntegrity: byte-level problems of a run (damaged record, gap, a type index entry naming another type) and of the store (a blob that does not hash to its name)', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const w = await s.createRun('a');
    await w.append(Array.from({ length: 20 }, (_, i) => ({ type: 'step.finished', data: i })), { sync: true });
    await w.close();
    const h = await s.blobs.put(new Uint8Array([7, 7, 7]));
    expect(await s.checkIntegrity('a')).toEqual([]);
    expect(await s.checkIntegrity(null)).toEqual([]);
    await s.close();
    const db = new ClassicLevel<string, string>(path.join(dir, 'runs', 'a', 'log'));
    await db.open();
    await db.put(encodeKey(4), 'not a record at all');
    await db.del(encodeKey(9));
    await db.put(`${INDEX_PREFIX}checkpoint.committed:${encodeKey(12)}`, '');
    await db.close();
    await fsp.writeFile(path.join(dir, 'blobs', h.slice(0, 2), h), 'other bytes');
    const s2 = await Store.open(dir);
    const run = await s2.checkIntegrity('a');
    expect(run).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ runId: 'a', kind: 'record', seq: 4 }),
        expect.objectContaining({ runId: 'a', kind: 'sequence', seq: 9, message: expect.stringMatching(/events 9 are missing/) }),
        expect.objectContaining({ runId: 'a', kind: 'record', seq: 12, message: expect.stringMatching(/type index entry .* names event 12, a step.finished/) }),
      ]),
    );
    expect(run.every((p) => ['record', 'sequence'].includes(p.kind))).toBe(true);
    const store = await s2.checkIntegrity(null);
    expect(store).toEqual([expect.objectContaining({ runId: null, kind: 'blob', file: `blobs/${h.slice(0, 2)}/${h}` })]);
    await s2.close();
  });

  it('the stores made by earlier releases read by type as they read in full, before and after their first writer indexes them', async () => {
    const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
    for (const made of [path.join(fixtures, 'pre-seam-store', 'store'), path.join(fixtures, 'rules1-store', 'store')]) {
      const dir = await tempDir();
      await fsp.cp(made, dir, { recursive: true });
      const s = await Store.open(dir);
      for (const id of await s.listRuns()) {
        const byScan = async (): Promise<Map<string, number[]>> => {
          const r = await s.openRun(id, 'read');
          const out = new Map<string, number[]>();
          for await (const x of r.read()) out.set(x.type, [...(out.get(x.type) ?? []), x.seq]);
          await r.close();
          return out;
        };
        const byIndex = async (): Promise<Map<string, number[]>> => {
          const r = await s.openRun(id, 'read');
          const out = new Map<string, number[]>();
          for (const type of s.indexedTypes) {
            const seqs = (await collect(r.readIndexed(type))).map((x) => x.seq);
            if (seqs.length > 0) out.set(type, seqs);
          }
          await r.close();
          return out;
        };
        const all = await byScan();
        const want = new Map([...all].filter(([t]) => s.indexedTypes.includes(t)));
        expect(want.get('run.created')).toEqual([0]);
        expect(await byIndex()).toEqual(want);
        await (await s.openRun(id, 'write')).close();
        expect(await byIndex()).toEqual(want);
        expect(await byScan()).toEqual(all);
      }
      await s.close();
    }
  });

  it('follow sees the records another process appends, in order, until aborted; after a SIGKILL of the writer every committed record reads', async () => {
    const dir = await tempDir();
    const s = await Store.open(dir);
    const child = spawnFixture('writer.ts', [dir, 'r', 'append']);
    try {
      await waitForLine(child, /^ready (\d+)/);
      const ac = new AbortController();
      const seen: number[] = [];
      for await (const r of s.follow('r', 0, ac.signal)) {
        expect((r.data as { i: number }).i).toBe(r.seq);
        seen.push(r.seq);
        if (seen.length >= 600) ac.abort();
      }
      expect(seen).toEqual(Array.from({ length: 600 }, (_, i) => i));
      await killAndWait(child);
      const log = await s.openRun('r', 'read');
      const committed = await log.committedSeq();
      expect(committed).toBeGreaterThanOrEqual(0);
      expect((await collect(log.read({ to: committed }))).length).toBe(committed + 1);
      await log.close();
    } finally {
      await killAndWait(child);
      await s.close();
    }
  });
});
