import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKey, encodeValue } from '../../src/log/codec.js';
import {
  CorruptLogError,
  RunExistsError,
  RunLockedError,
  SchemaVersionError,
  StoreError,
  UnknownRunError,
} from '../../src/log/errors.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, collect, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

const step = (i: number) => ({ type: 'step.finished', data: { step: i } });

async function freshStore(): Promise<{ dir: string; store: Store }> {
  const dir = await tempDir();
  return { dir, store: await Store.open(dir) };
}

/** Opens a run's LevelDB directly, as a tamperer would. */
async function raw(dir: string, runId: string): Promise<ClassicLevel<string, string>> {
  const db = new ClassicLevel<string, string>(path.join(dir, 'runs', runId, 'log'));
  await db.open();
  return db;
}

async function expectCorrupt(p: Promise<unknown>, runId: string, seq: number, re: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptLogError);
  expect((err as CorruptLogError).runId).toBe(runId);
  expect((err as CorruptLogError).seq).toBe(seq);
  expect((err as Error).message).toMatch(re);
  expect((err as Error).message).toContain(`run "${runId}"`);
}

describe('Store.open', () => {
  it('creates store.json on first use and reopens', async () => {
    const dir = await tempDir();
    const store = await Store.open(path.join(dir, 'nested', 's'));
    expect(JSON.parse(await fsp.readFile(path.join(dir, 'nested/s/store.json'), 'utf8'))).toEqual({
      format: 'retrace-store',
      version: 1,
    });
    await store.close();
    await (await Store.open(path.join(dir, 'nested', 's'), { create: false })).close();
  });

  it('refuses a folder with other content, a missing store without create, and newer versions', async () => {
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'notes.txt'), 'hi');
    await expect(Store.open(dir)).rejects.toThrow(StoreError);
    await expect(Store.open(dir)).rejects.toThrow(`${dir} is not a retrace store`);
    await expect(Store.open(path.join(dir, 'nope'), { create: false })).rejects.toThrow(/is not a retrace store/);
    const newer = await tempDir();
    await fsp.writeFile(path.join(newer, 'store.json'), JSON.stringify({ format: 'retrace-store', version: 2 }));
    await expect(Store.open(newer)).rejects.toThrow(/version 2 retrace store/);
  });

  it('several opens of a new folder at once all succeed', async () => {
    const dir = path.join(await tempDir(), 's');
    const stores = await Promise.all(Array.from({ length: 8 }, () => Store.open(dir)));
    for (const s of stores) await s.close();
  });

  it('rejects run ids that are not plain names', async () => {
    const { store } = await freshStore();
    await expect(store.createRun('../escape')).rejects.toThrow(StoreError);
    await expect(store.createRun('')).rejects.toThrow(/invalid run id/);
    await store.close();
  });
});

describe('runs', () => {
  it('createRun claims the id once; listRuns/hasRun; unknown runs are named with known ones', async () => {
    const { store } = await freshStore();
    const a = await store.createRun('a');
    await expect(store.createRun('a')).rejects.toThrow(RunExistsError);
    await store.createRun('b');
    expect(await store.listRuns()).toEqual(['a', 'b']);
    expect(await store.hasRun('a')).toBe(true);
    expect(await store.hasRun('zz')).toBe(false);
    const err = await store.openRun('zz', 'read').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownRunError);
    expect((err as Error).message).toBe('unknown run "zz" (known runs: "a", "b")');
    await a.close();
    await store.close();
  });

  it('owner.json names this process while open for writing, and is removed on close', async () => {
    const { dir, store } = await freshStore();
    const log = await store.createRun('r');
    const owner = JSON.parse(await fsp.readFile(path.join(dir, 'runs/r/owner.json'), 'utf8'));
    expect(owner.pid).toBe(process.pid);
    expect(typeof owner.hostname).toBe('string');
    expect(typeof owner.command).toBe('string');
    expect(Date.parse(owner.startedAt)).not.toBeNaN();
    await expect(store.openRun('r', 'write')).rejects.toThrow(RunLockedError);
    await log.close();
    await expect(fsp.access(path.join(dir, 'runs/r/owner.json'))).rejects.toThrow();
    await store.close();
  });

  it("'read' mode never writes to the original database", async () => {
    const { dir, store } = await freshStore();
    const w = await store.createRun('r');
    for (let i = 0; i < 50; i++) await w.append([step(i)], { sync: i % 10 === 9 });
    await w.close();
    const logDir = path.join(dir, 'runs/r/log');
    const state = async () =>
      Promise.all(
        (await fsp.readdir(logDir)).sort().map(async (n) => {
          const st = await fsp.stat(path.join(logDir, n));
          return [n, st.size, st.mtimeMs];
        }),
      );
    const before = await state();
    const r = await store.openRun('r', 'read');
    expect((await r.readAll()).length).toBe(50);
    await r.close();
    expect(await state()).toEqual(before);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]); // its private copy is gone
    await store.close();
  });

  it('Store.open removes scratch files of processes that are gone', async () => {
    const dir = await tempDir();
    await (await Store.open(dir)).close();
    const deadPid = 4_194_303; // above the usual pid range
    await fsp.mkdir(path.join(dir, 'tmp', `read-${deadPid}-abc`));
    await fsp.writeFile(path.join(dir, 'tmp', `blob-${deadPid}-abc`), 'x');
    await fsp.mkdir(path.join(dir, 'tmp', `read-${process.pid}-mine`));
    await (await Store.open(dir)).close();
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([`read-${process.pid}-mine`]);
  });

  it('removeRun deletes a closed run and refuses an open one', async () => {
    const { store } = await freshStore();
    const log = await store.createRun('r');
    await log.append([step(0)], { sync: true });
    await expect(store.removeRun('r')).rejects.toThrow(RunLockedError);
    await log.close();
    expect((await store.runBytes('r')).allocated).toBeGreaterThan(0);
    await store.removeRun('r');
    expect(await store.listRuns()).toEqual([]);
    await expect(store.removeRun('r')).rejects.toThrow(UnknownRunError);
    await store.close();
  });
});

describe('append and read', () => {
  it('assigns consecutive seqs from 0 and reads ranges', async () => {
    const { store } = await freshStore();
    const log = await store.createRun('r');
    expect(await log.lastSeq()).toBe(-1);
    expect(await log.committedSeq()).toBe(-1);
    expect(await log.append([step(0), step(1), step(2)], { sync: false })).toEqual([0, 1, 2]);
    expect(await log.append([step(3)], { sync: true })).toEqual([3]);
    expect(await log.append([], { sync: false })).toEqual([]);
    const seqs = [];
    for (let i = 4; i < 600; i++) seqs.push(...(await log.append([step(i)], { sync: i % 97 === 0 })));
    expect(seqs).toEqual(Array.from({ length: 596 }, (_, k) => k + 4));
    expect(await log.lastSeq()).toBe(599);
    const all = await collect(log.read());
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 600 }, (_, k) => k));
    expect(all.every((r, i) => (r.data as { step: number }).step === i && r.v === 1 && r.type === 'step.finished')).toBe(true);
    expect((await collect(log.read({ from: 10, to: 14 }))).map((r) => r.seq)).toEqual([10, 11, 12, 13, 14]);
    expect((await collect(log.read({ from: 598 }))).map((r) => r.seq)).toEqual([598, 599]);
    expect((await collect(log.read({ to: 1 }))).map((r) => r.seq)).toEqual([0, 1]);
    expect(await collect(log.read({ from: 700 }))).toEqual([]);
    expect(await collect(log.read({ from: 5, to: 4 }))).toEqual([]);
    expect((await log.get(42))?.data).toEqual({ step: 42 });
    expect(await log.get(600)).toBeUndefined();
    await log.close();
    const again = await store.openRun('r', 'read');
    expect(await again.lastSeq()).toBe(599);
    expect(await again.committedSeq()).toBe(599); // a clean close commits everything
    expect((await again.readAll()).length).toBe(600);
    await expect(again.append([step(600)], { sync: true })).rejects.toThrow(/open for reading/);
    await again.close();
    await store.close();
  });

  it('keeps at as given, and defaults it to now', async () => {
    const { store } = await freshStore();
    const log = await store.createRun('r');
    await log.append([{ type: 't', data: null, at: '2020-01-02T03:04:05.000Z' }, { type: 't', data: 1 }], { sync: true });
    const [a, b] = await log.readAll();
    expect(a.at).toBe('2020-01-02T03:04:05.000Z');
    expect(Math.abs(Date.parse(b.at) - Date.now())).toBeLessThan(60_000);
    await expect(log.append([{ type: 't', data: { x: NaN } }], { sync: false })).rejects.toThrow(/NaN/);
    await expect(log.append([{ type: '', data: 1 }], { sync: false })).rejects.toThrow(/no type/);
    // A rejected append consumed no seq.
    expect(await log.append([{ type: 't', data: 2 }], { sync: false })).toEqual([2]);
    await store.close();
  });

  it('buffers non-sync appends and writes them in order before the next sync append', async () => {
    const { dir, store } = await freshStore();
    // What is on disk is what a crash would leave: drop the buffer, close, reopen.
    const crashAndReopen = async (log: Awaited<ReturnType<Store['createRun']>>) => {
      log.__dropUnflushedForTest();
      await log.close();
      return store.openRun('r', 'write');
    };
    let log = await store.createRun('r');
    await log.append([step(0), step(1)], { sync: false });
    expect(log.pendingCount).toBe(2);
    expect(await log.lastSeq()).toBe(1); // the writer counts its buffer
    log = await crashAndReopen(log);
    expect(await log.lastSeq()).toBe(-1); // they were only in memory

    await log.append([step(0), step(1)], { sync: false });
    await log.append([step(2)], { sync: false });
    await log.append([{ type: 'checkpoint.committed', data: { step: 3 } }], { sync: true });
    expect(log.pendingCount).toBe(0);
    expect(await log.committedSeq()).toBe(3);
    expect(JSON.parse(await fsp.readFile(path.join(dir, 'runs/r/committed.json'), 'utf8')).seq).toBe(3);
    await log.append([step(4)], { sync: false });
    log = await crashAndReopen(log);
    expect((await log.readAll()).map((x) => [x.seq, x.type])).toEqual([
      [0, 'step.finished'],
      [1, 'step.finished'],
      [2, 'step.finished'],
      [3, 'checkpoint.committed'],
    ]);

    // flush() writes the buffer without a sync append.
    await log.append([step(4)], { sync: false });
    await log.flush();
    expect(log.pendingCount).toBe(0);
    log = await crashAndReopen(log);
    expect(await log.lastSeq()).toBe(4);

    // 256 pending records are written as one batch without waiting for a sync append.
    for (let i = 5; i < 5 + 255; i++) await log.append([step(i)], { sync: false });
    expect(log.pendingCount).toBe(255);
    await log.append([step(260)], { sync: false });
    expect(log.pendingCount).toBe(0);
    await log.append([step(261)], { sync: false });
    log = await crashAndReopen(log);
    expect(await log.lastSeq()).toBe(260);
    expect((await log.readAll()).map((r) => r.seq)).toEqual(Array.from({ length: 261 }, (_, k) => k));
    await store.close();
  });

  it('appends made without awaiting are serialised in call order', async () => {
    const { store } = await freshStore();
    const log = await store.createRun('r');
    const ps = [];
    for (let i = 0; i < 1000; i++) ps.push(log.append([step(i)], { sync: i % 100 === 99 }));
    const seqs = (await Promise.all(ps)).flat();
    expect(seqs).toEqual(Array.from({ length: 1000 }, (_, k) => k));
    expect((await log.readAll()).map((r) => (r.data as { step: number }).step)).toEqual(seqs);
    expect(await log.committedSeq()).toBe(999);
    await store.close();
  });

  it('a read view in the writer process shares the writer handle and sees its buffer', async () => {
    const { store } = await freshStore();
    const w = await store.createRun('r');
    await w.append([step(0), step(1)], { sync: false });
    const r = await store.openRun('r', 'read');
    expect((await r.readAll()).length).toBe(2);
    await w.append([step(2)], { sync: false });
    expect(await r.lastSeq()).toBe(2);
    await r.close();
    await w.append([step(3)], { sync: true }); // the writer is unaffected by the reader's close
    const r2 = await store.openRun('r', 'read');
    await w.close(); // the shared LevelDB stays open for the reader
    expect((await r2.readAll()).length).toBe(4);
    await r2.close();
    await store.close();
  });

  it('records with a newer schema version are a SchemaVersionError', async () => {
    const { dir, store } = await freshStore();
    const log = await store.createRun('r', { schemaVersion: 3 });
    await log.append([step(0)], { sync: true });
    await log.close();
    const s2 = await Store.open(dir, { maxSchemaVersion: 2 });
    const r = await s2.openRun('r', 'read');
    await expect(r.readAll()).rejects.toThrow(SchemaVersionError);
    await r.close();
    const r3 = await s2.openRun('r', 'read', { maxSchemaVersion: 3 });
    expect((await r3.readAll())[0].v).toBe(3);
    await s2.close();
    await store.close();
  });
});

describe('integrity', () => {
  async function runWith(n: number, dir: string, store: Store): Promise<void> {
    const log = await store.createRun('r');
    for (let i = 0; i < n; i += 10) await log.append(Array.from({ length: 10 }, (_, k) => step(i + k)), { sync: false });
    await log.append([{ type: 'checkpoint.committed', data: {} }], { sync: true });
    await log.close();
    void dir;
  }

  it('a tampered value is a CorruptLogError naming run and seq, after the good records before it', async () => {
    const { dir, store } = await freshStore();
    await runWith(30, dir, store);
    const db = await raw(dir, 'r');
    const good = await db.get(encodeKey(17));
    await db.put(encodeKey(17), good!.replace('"step":17', '"step":71'));
    await db.close();
    for (const mode of ['read', 'write'] as const) {
      const log = await store.openRun('r', mode);
      const seen: number[] = [];
      const reading = (async () => {
        for await (const rec of log.read()) seen.push(rec.seq);
      })();
      await expectCorrupt(reading, 'r', 17, /event 17 is corrupt \(checksum mismatch/);
      expect(seen).toEqual(Array.from({ length: 17 }, (_, k) => k));
      await expectCorrupt(log.get(17), 'r', 17, /checksum mismatch/);
      expect((await log.readAll({ to: 16 })).length).toBe(17); // a range that avoids it is fine
      await log.close();
    }
    await store.close();
  });

  it('a record that is internally consistent but under the wrong key is corruption', async () => {
    const { dir, store } = await freshStore();
    await runWith(10, dir, store);
    const db = await raw(dir, 'r');
    await db.put(encodeKey(4), encodeValue({ v: 1, seq: 5, type: 'x', at: new Date().toISOString(), data: 1 }).value);
    await db.close();
    const log = await store.openRun('r', 'read');
    await expectCorrupt(log.readAll(), 'r', 4, /stored as event 4 says it is event 5/);
    await store.close();
  });

  it('a deleted record in the middle is a gap error on every read that crosses it, and the writer refuses to append', async () => {
    const { dir, store } = await freshStore();
    await runWith(50, dir, store);
    const db = await raw(dir, 'r');
    await db.batch([
      { type: 'del', key: encodeKey(20) },
      { type: 'del', key: encodeKey(21) },
      { type: 'del', key: encodeKey(22) },
    ]);
    await db.close();
    const r = await store.openRun('r', 'read');
    await expectCorrupt(r.readAll(), 'r', 20, /events 20\.\.22 are missing/);
    // A reader checks what it reads (opening does not scan every key): a range past the gap reads,
    // every read that crosses it fails naming it, forwards, backwards and by the type index.
    expect((await r.readAll({ from: 40 })).map((x) => x.seq)).toEqual(Array.from({ length: 11 }, (_, i) => 40 + i));
    expect(await r.lastSeq()).toBe(50);
    await expectCorrupt(r.readAll({ from: 19, to: 23 }), 'r', 20, /events 20\.\.22 are missing/);
    const back = async (): Promise<number[]> => {
      const out: number[] = [];
      for await (const x of r.readBackward()) out.push(x.seq);
      return out;
    };
    await expectCorrupt(back(), 'r', 20, /events 20\.\.22 are missing/);
    await r.close();
    const w = await store.openRun('r', 'write');
    await expectCorrupt(w.append([step(99)], { sync: true }), 'r', 20, /events 20\.\.22 are missing/);
    await w.close();
    await store.close();
  });

  it('a lost tail below the committed seq is an error (LevelDB would not say)', async () => {
    const { dir, store } = await freshStore();
    await runWith(40, dir, store); // committed = 40
    const db = await raw(dir, 'r');
    await db.batch([35, 36, 37, 38, 39, 40].map((s) => ({ type: 'del' as const, key: encodeKey(s) })));
    await db.close();
    const r = await store.openRun('r', 'read');
    expect(await r.committedSeq()).toBe(40);
    await expectCorrupt(r.readAll(), 'r', 35, /the log ends at event 34 but events up to 40 were committed \(events 35\.\.40 are missing\)/);
    await r.close();
    // The whole log gone is reported the same way.
    await fsp.rm(path.join(dir, 'runs/r/log'), { recursive: true });
    const r2 = await store.openRun('r', 'read');
    await expectCorrupt(r2.readAll(), 'r', 0, /the log is empty but events up to 40 were committed/);
    await r2.close();
    await store.close();
  });

  it('a committed record replaced by another is an error', async () => {
    const { dir, store } = await freshStore();
    await runWith(10, dir, store);
    const db = await raw(dir, 'r');
    await db.put(encodeKey(10), encodeValue({ v: 1, seq: 10, type: 'other', at: new Date().toISOString(), data: 1 }).value);
    await db.close();
    const r = await store.openRun('r', 'read');
    await expectCorrupt(r.readAll(), 'r', 10, /event 10 is not the event that was committed/);
    await store.close();
  });

  it('damage to the LevelDB write-ahead log is reported, not absorbed', async () => {
    const { dir, store } = await freshStore();
    const log = await store.createRun('r');
    for (let i = 0; i < 1000; i++) await log.append([step(i)], { sync: false });
    await log.append([{ type: 'checkpoint.committed', data: { step: 1000 } }], { sync: true });
    expect(await log.committedSeq()).toBe(1000);
    await log.close();
    const logDir = path.join(dir, 'runs/r/log');
    const walName = (await fsp.readdir(logDir)).find((n) => n.endsWith('.log'))!;
    const wal = await fsp.readFile(path.join(logDir, walName));
    expect(wal.length).toBeGreaterThan(50_000); // the records are still only in the log
    for (let i = 0; i < 32; i++) wal[(wal.length >> 1) + i] ^= 0xa5;
    await fsp.writeFile(path.join(logDir, walName), wal);

    // LevelDB itself opens the damaged database without complaint and silently drops records.
    const db = await raw(dir, 'r');
    let count = 0;
    for await (const _ of db.keys()) count++;
    await db.close();
    expect(count).toBeLessThan(1001);

    // retrace reports it, in both modes, naming the run and the first missing seq.
    for (const mode of ['read', 'write'] as const) {
      const r = await store.openRun('r', mode);
      const err = await r.readAll().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptLogError);
      expect((err as Error).message).toMatch(/run "r": (events \d+(\.\.\d+)? are missing|the log ends at event \d+ but events up to 1000 were committed)/);
      await r.close();
    }
    await store.close();
  });
});
