import { promises as fsp } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { collectGarbage, diskUsage } from '../../src/log/gc.js';
import { Store } from '../../src/log/store.js';
import type { StoredRecord } from '../../src/log/codec.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

/** The test schema: 'snapshot' events name blobs in data.blobs. */
const refs = (rec: StoredRecord): string[] => (rec.type === 'snapshot' ? (rec.data as { blobs: string[] }).blobs : []);

const blob = (n: number, fill: number) => new Uint8Array(n).fill(fill);

async function age(store: Store, hash: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await fsp.utimes(store.blobs.pathOf(hash), t, t);
}

describe('collectGarbage', () => {
  it('deletes only unreferenced blobs older than the grace period', async () => {
    const store = await Store.open(await tempDir());
    const [a, b, shared, oldOrphan, youngOrphan] = await store.blobs.putMany([
      blob(100, 1),
      blob(200, 2),
      blob(300, 3),
      blob(400, 4),
      blob(500, 5),
    ]);
    const r1 = await store.createRun('r1');
    await r1.append([{ type: 'snapshot', data: { blobs: [a, shared] } }], { sync: true });
    const r2 = await store.createRun('r2');
    await r2.append([{ type: 'step.finished', data: {} }, { type: 'snapshot', data: { blobs: [b, shared] } }], { sync: false });
    // r2 stays open for writing with its events buffered: gc reads them through the shared handle.
    for (const h of [a, b, shared, oldOrphan, youngOrphan]) await age(store, h, 3600_000);
    await age(store, youngOrphan, 1000);

    const dry = await collectGarbage(store, refs, { dryRun: true });
    expect(dry.deleted).toEqual([oldOrphan]);
    expect(await store.blobs.has(oldOrphan)).toBe(true);

    const res = await collectGarbage(store, refs, { graceMs: 10 * 60_000 });
    expect(res.runs).toBe(2);
    expect(res.referenced).toBe(3);
    expect(res.deleted).toEqual([oldOrphan]);
    expect(res.freedBytes).toBe(400);
    expect(res.keptYoung).toEqual([youngOrphan]);
    expect((await store.blobs.list()).sort()).toEqual([a, b, shared, youngOrphan].sort());

    // A put() of an existing old blob makes it young again: a trainer about to name it is safe.
    await age(store, youngOrphan, 3600_000);
    await store.blobs.put(blob(500, 5));
    expect((await collectGarbage(store, refs)).deleted).toEqual([]);

    // Once no run references it and it is old, it goes.
    await r1.close();
    await store.removeRun('r1');
    await age(store, a, 3600_000);
    const after = await collectGarbage(store, refs, { graceMs: 0 });
    expect(after.deleted.sort()).toEqual([a, youngOrphan].sort());
    expect((await store.blobs.list()).sort()).toEqual([b, shared].sort());
    await store.close();
  });

  it('deletes nothing when a run cannot be read', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const h = await store.blobs.put(blob(10, 1));
    await age(store, h, 3600_000);
    const r = await store.createRun('r');
    await r.append([{ type: 'snapshot', data: { blobs: [h] } }], { sync: true });
    await r.close();
    await fsp.rm(`${dir}/runs/r/log`, { recursive: true }); // the log is lost, committed.json says seq 0
    await expect(collectGarbage(store, refs, { graceMs: 0 })).rejects.toThrow(/run "r"/);
    expect(await store.blobs.has(h)).toBe(true);
    await store.close();
  });
});

describe('diskUsage', () => {
  it('counts logs and referenced blobs per run, shared blobs once in the total', async () => {
    const store = await Store.open(await tempDir());
    const [a, b, s, orphan] = await store.blobs.putMany([blob(1000, 1), blob(2000, 2), blob(4000, 3), blob(8000, 4)]);
    const missing = 'f'.repeat(64);
    const r1 = await store.createRun('r1');
    await r1.append([{ type: 'snapshot', data: { blobs: [a, s] } }], { sync: true });
    await r1.close();
    const r2 = await store.createRun('r2');
    await r2.append([{ type: 'snapshot', data: { blobs: [b, s, missing] } }], { sync: true });
    await r2.close();

    const u = await diskUsage(store, refs);
    const [u1, u2] = u.runs;
    expect(u1).toMatchObject({ runId: 'r1', blobBytes: 5000, exclusiveBlobBytes: 1000, sharedBlobBytes: 4000, blobs: 2, missingBlobs: [] });
    expect(u2).toMatchObject({ runId: 'r2', blobBytes: 6000, exclusiveBlobBytes: 2000, sharedBlobBytes: 4000, blobs: 2, missingBlobs: [missing] });
    expect(u1.logBytes).toBe(await store.runBytes('r1'));
    expect(u1.logBytes).toBeGreaterThan(0);
    expect(u.shared).toEqual([{ hash: s, bytes: 4000, runs: ['r1', 'r2'] }]);
    expect(u.unreferencedBlobs).toBe(1);
    expect(u.unreferencedBlobBytes).toBe(8000);
    expect(u.totalBytes).toBe(u1.logBytes + u2.logBytes + 1000 + 2000 + 4000 + 8000);
    void orphan;
    await store.close();
  });
});
