import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { collectGarbage, diskUsage } from '../../src/log/gc.js';
import { Store } from '../../src/log/store.js';
import type { StoredRecord } from '../../src/log/codec.js';
import { blobRefs } from '../../src/log/events.js';
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
    // Every figure is what the files take on disk (st.blocks × 512), block rounding included.
    const onDisk = async (h: string) => (await fsp.stat(store.blobs.pathOf(h))).blocks * 512;
    const [A, B, S, O] = [await onDisk(a), await onDisk(b), await onDisk(s), await onDisk(orphan)];
    expect(A).toBeGreaterThanOrEqual(1000);
    expect(u1).toMatchObject({ runId: 'r1', blobBytes: A + S, exclusiveBlobBytes: A, sharedBlobBytes: S, blobs: 2, missingBlobs: [] });
    expect(u2).toMatchObject({ runId: 'r2', blobBytes: B + S, exclusiveBlobBytes: B, sharedBlobBytes: S, blobs: 2, missingBlobs: [missing] });
    // The run's folder: its LevelDB files and marks, each at least a block, and the folders.
    expect(u1.logBytes).toBe((await store.runBytes('r1')).allocated);
    expect(u.shared).toEqual([{ hash: s, bytes: S, runs: ['r1', 'r2'] }]);
    expect(u.unreferencedBlobs).toBe(1);
    expect(u.unreferencedBlobBytes).toBe(O);
    expect(u.totalBytes).toBe(u1.logBytes + u2.logBytes + A + B + S + O);
    // The contents: the blobs' bytes and every file of the run folders (the LevelDB, committed.json
    // and its copy), less than what they take.
    const contents = 1000 + 2000 + 4000 + 8000 + (await store.runBytes('r1')).content + (await store.runBytes('r2')).content;
    expect(u.totalContentBytes).toBe(contents);
    expect(u.totalContentBytes).toBeLessThan(u.totalBytes);
    void orphan;
    await store.close();
  });
});

describe('collectGarbage: safety that does not depend on timing', () => {
  /** A writer's commit in a process of its own: intent, blobs, synced event, release. */
  async function commit(dir: string, runId: string, bytes: Uint8Array[]): Promise<string[]> {
    const w = await Store.open(dir);
    try {
      const log = (await w.hasRun(runId)) ? await w.openRun(runId, 'write') : await w.createRun(runId);
      const intent = w.blobs.intent(runId);
      const names = await w.blobs.putMany(bytes, undefined, intent);
      await log.append([{ type: 'snapshot', data: { blobs: names } }], { sync: true });
      await intent.release();
      return names;
    } finally {
      await w.close();
    }
  }

  it('keeps a blob that a writer reuses and commits between gc deciding and unlinking it (injected delay)', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const orphan = await store.blobs.put(blob(300, 7));
    await age(store, orphan, 3600_000);
    let committed: string[] = [];
    const res = await collectGarbage(store, refs, {
      graceMs: 0,
      // The whole commit of a new run that reuses the orphan, right before gc's unlink of it.
      pause: async (point) => {
        if (point === `gc:unlink ${orphan}`) committed = await commit(dir, 'late', [blob(300, 7)]);
      },
    });
    expect(committed).toEqual([orphan]);
    // gc's condemned copy went; the writer found the blob missing and wrote it again.
    expect(res.deleted).toEqual([orphan]);
    expect(await store.blobs.get(orphan)).toEqual(blob(300, 7));
    expect(await store.blobs.listCondemned()).toEqual([]);
    expect((await collectGarbage(store, refs, { graceMs: 0 })).deleted).toEqual([]);
    await store.close();
  });

  it('keeps the blobs of a writer paused mid-commit far longer than the grace period', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const w = await Store.open(dir);
    const log = await w.createRun('paused');
    const intent = w.blobs.intent('paused');
    const names = await w.blobs.putMany([blob(100, 1), blob(200, 2)], undefined, intent);
    // The writer stops here (SIGSTOP, a suspended laptop) for an hour: its blobs look old.
    for (const h of names) await age(store, h, 3600_000);
    const res = await collectGarbage(store, refs, { graceMs: 1000 });
    expect(res.deleted).toEqual([]);
    expect(res.keptIntent.sort()).toEqual([...names].sort());
    expect(res.intents).toBe(1);
    // It wakes up and commits: the event names blobs that are all there.
    await log.append([{ type: 'snapshot', data: { blobs: names } }], { sync: true });
    await intent.release();
    await w.close();
    for (const h of names) expect((await store.blobs.get(h)).byteLength).toBeGreaterThan(0);
    expect((await collectGarbage(store, refs, { graceMs: 0 })).deleted).toEqual([]);
    await store.close();
  });

  it('drops intents of dead processes of this machine, keeps those of other machines and reports them', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const [dead, foreign, twin, rebooted] = await store.blobs.putMany([blob(10, 1), blob(20, 2), blob(30, 3), blob(40, 4)]);
    for (const h of [dead, foreign, twin, rebooted]) await age(store, h, 3600_000);
    const idOf = async (file: string) => (await fsp.readFile(file, 'utf8').catch(() => '')).trim() || null;
    const machineId = await idOf('/etc/machine-id');
    const bootId = await idOf('/proc/sys/kernel/random/boot_id');
    const { spawnSync } = await import('node:child_process');
    const gonePid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const os = await import('node:os');
    const intents = `${dir}/blobs/intents`;
    await fsp.mkdir(intents, { recursive: true });
    const body = (host: string, pid: number, hashes: string[], ids: { machineId?: string | null; bootId?: string | null } = {}) =>
      JSON.stringify({ format: 'retrace-blob-intent', version: 1, host, pid, startedAt: new Date().toISOString(), runId: 'x', machineId, bootId, ...ids, hashes });
    // A writer of this machine that is gone.
    await fsp.writeFile(`${intents}/${gonePid}-aa.json`, body(os.hostname(), Number(gonePid), [dead]));
    // Another machine: its pid means nothing here, even when it is not alive here.
    await fsp.writeFile(`${intents}/1-bb.json`, body('another-machine', 1, [foreign]));
    const files = ['1-bb.json'];
    const kept = [foreign];
    const deleted = [dead];
    if (machineId !== null) {
      // Same host name, another machine (a clone): kept.
      await fsp.writeFile(`${intents}/${gonePid}-cc.json`, body(os.hostname(), Number(gonePid), [twin], { machineId: 'f'.repeat(32) }));
      files.push(`${gonePid}-cc.json`);
      kept.push(twin);
    } else deleted.push(twin);
    if (bootId !== null) {
      // This machine before a reboot: stale even though pid 1 is alive now.
      await fsp.writeFile(`${intents}/1-dd.json`, body(os.hostname(), 1, [rebooted], { bootId: 'earlier-boot' }));
      deleted.push(rebooted);
    } else deleted.push(rebooted);
    const res = await collectGarbage(store, refs, { graceMs: 0 });
    expect(res.deleted.sort()).toEqual(deleted.sort());
    expect(res.keptIntent.sort()).toEqual(kept.sort());
    expect(res.staleIntentsRemoved).toBe(bootId !== null ? 2 : 1);
    expect(res.otherHostIntents).toContainEqual(expect.objectContaining({ host: 'another-machine', pid: 1, runId: 'x' }));
    expect(res.otherHostIntents).toHaveLength(kept.length);
    expect((await fsp.readdir(intents)).sort()).toEqual(files.sort());
    // An intent that cannot be read may name anything: nothing is deleted.
    await fsp.writeFile(`${intents}/2-cc.json`, '{"format":"retrace-blob-intent","hashes":[');
    for (const f of files) await fsp.rm(`${intents}/${f}`);
    await expect(collectGarbage(store, refs, { graceMs: 0 })).rejects.toThrow(/blob intent .*2-cc\.json is not a readable intent/);
    expect(await store.blobs.has(foreign)).toBe(true);
    await store.close();
  });

  it('puts back what a killed gc left condemned; readers find it meanwhile', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const names = await commit(dir, 'r', [blob(64, 9)]);
    const h = names[0]!;
    // A gc killed between condemning and its check (it condemned a blob named since its mark).
    const aside = await store.blobs.condemn(h);
    expect(aside).not.toBeNull();
    expect(await store.blobs.has(h)).toBe(false);
    expect(await store.blobs.get(h)).toEqual(blob(64, 9));
    const res = await collectGarbage(store, refs, { graceMs: 0 });
    expect(res.deleted).toEqual([]);
    expect(await store.blobs.has(h)).toBe(true);
    expect(await store.blobs.listCondemned()).toEqual([]);
    await store.close();
  });

  it('refuses a grace period that is not a finite number ≥ 0, deleting nothing', async () => {
    const store = await Store.open(await tempDir());
    const h = await store.blobs.put(blob(10, 1));
    await age(store, h, 3600_000);
    for (const bad of [NaN, -1, Infinity, -Infinity]) await expect(collectGarbage(store, refs, { graceMs: bad })).rejects.toThrow(RangeError);
    await expect(collectGarbage(store, refs, { graceMs: '600' as unknown as number })).rejects.toThrow(TypeError);
    expect(await store.blobs.has(h)).toBe(true);
    await store.close();
  });

  it('sees a run whose folder is a symlink (a run moved to another disk) and keeps its blobs', async () => {
    const dir = await tempDir();
    const elsewhere = await tempDir();
    const [h] = await commit(dir, 'moved', [blob(50, 5)]);
    await fsp.rename(`${dir}/runs/moved`, `${elsewhere}/moved`);
    await fsp.symlink(`${elsewhere}/moved`, `${dir}/runs/moved`);
    const store = await Store.open(dir);
    await age(store, h!, 3600_000);
    expect(await store.listRuns()).toEqual(['moved']);
    const res = await collectGarbage(store, refs, { graceMs: 0 });
    expect(res).toMatchObject({ runs: 1, referenced: 1, deleted: [] });
    expect(await store.blobs.has(h!)).toBe(true);
    // A link whose target is gone (a disk not mounted): its references are unknown, gc refuses.
    await fsp.symlink(`${elsewhere}/nowhere`, `${dir}/runs/unmounted`);
    const orphan = await store.blobs.put(blob(70, 7));
    await age(store, orphan, 3600_000);
    await expect(collectGarbage(store, refs, { graceMs: 0 })).rejects.toThrow(/runs\/unmounted is a symlink to .*nowhere, which does not exist/);
    expect(await store.blobs.has(orphan)).toBe(true);
    await store.close();
  });
});

describe('collectGarbage with the schema blobRefs', () => {
  const ref = (hash: string, size: number) => ({ name: 'w', shape: [size], dtype: 'float32', hash, size: size * 4 });

  it('finds the blobs of checkpoints, snapshots and the start state through the type index, in indexed and older logs alike', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const [start, ck, snap, orphan] = await store.blobs.putMany([blob(8, 1), blob(8, 2), blob(8, 3), blob(8, 4)]);
    const w = await store.createRun('r');
    await w.append(
      [
        { type: 'run.created', data: { start: { weights: [ref(start!, 2)], optimizer: [] } } },
        ...Array.from({ length: 50 }, (_, i) => ({ type: 'step.finished', data: { step: i } })),
        { type: 'checkpoint.committed', data: { weights: [ref(ck!, 2)], optimizer: [] } },
        { type: 'snapshot.taken', data: { weights: [], optimizer: [ref(snap!, 2)] } },
      ],
      { sync: true },
    );
    await w.close();
    for (const h of [start, ck, snap, orphan]) await age(store, h!, 3600_000);
    expect((await collectGarbage(store, blobRefs, { graceMs: 0, dryRun: true })).deleted).toEqual([orphan]);
    // The same log as an older retrace wrote it (no index): read in full, same answer.
    await store.close();
    const db = new ClassicLevel<string, string>(path.join(dir, 'runs', 'r', 'log'));
    await db.open();
    for (const k of await db.keys().all()) if (!/^\d+$/.test(k)) await db.del(k);
    await db.close();
    const again = await Store.open(dir);
    const res = await collectGarbage(again, blobRefs, { graceMs: 0 });
    expect(res.deleted).toEqual([orphan]);
    expect(res.referenced).toBe(3);
    await again.close();
  });
});
