// The storage seam's contract: one suite that every RunStore implementation passes (the pattern of
// abstract-level's test suite and Emmett's event store tests). A backend's test file calls
// runStoreContract with a factory; see test/storage/leveldb.test.ts and memory.test.ts.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/log/blobs.js';
import { RunExistsError, RunLockedError, UnknownRunError, MissingBlobError } from '../../src/log/errors.js';
import { INDEXED_TYPES } from '../../src/log/events.js';
import { WrongExpectedSeqError, type EventLog, type RunStore, type StoredRecord } from '../../src/storage/types.js';

export interface StoreUnderTest {
  store: RunStore;
  /** Closes `store` and opens the same store again (what a new process would see). */
  reopen(): Promise<RunStore>;
}

export type StoreFactory = () => Promise<StoreUnderTest>;

const INDEXED = 'checkpoint.committed';
const NOT_INDEXED = 'step.finished';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const step = (i: number) => ({ type: NOT_INDEXED, data: { step: i } });
const ckpt = (i: number) => ({ type: INDEXED, data: { checkpoint: i } });

async function fill(log: EventLog, n: number, every = 5): Promise<void> {
  const recs = Array.from({ length: n }, (_, i) => (i % every === 0 ? ckpt(i) : step(i)));
  await log.append(recs, { sync: true });
}

export function runStoreContract(name: string, factory: StoreFactory): void {
  describe(`RunStore contract: ${name}`, () => {
    const open: RunStore[] = [];
    async function make(): Promise<StoreUnderTest> {
      const s = await factory();
      open.push(s.store);
      const reopen = s.reopen;
      s.reopen = async () => {
        const again = await reopen();
        open.push(again);
        return again;
      };
      return s;
    }
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.close().catch(() => {});
    });

    it('appends with consecutive seqs and reads ranges, forwards, backwards and by type', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      expect(await w.lastSeq()).toBe(-1);
      expect(await w.committedSeq()).toBe(-1);
      expect(await w.append([ckpt(0), step(1)], { sync: false })).toEqual([0, 1]);
      expect(await w.append([step(2), step(3), ckpt(4), step(5)], { sync: true })).toEqual([2, 3, 4, 5]);
      expect(await w.lastSeq()).toBe(5);
      expect(await w.committedSeq()).toBe(5);
      const all = await collect(w.read());
      expect(all.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(all[4]).toMatchObject({ v: 1, seq: 4, type: INDEXED, data: { checkpoint: 4 } });
      expect(typeof all[0]!.at).toBe('string');
      expect((await collect(w.read({ from: 2, to: 3 }))).map((r) => r.seq)).toEqual([2, 3]);
      expect(await collect(w.read({ from: 6 }))).toEqual([]);
      expect((await collect(w.readBackward())).map((r) => r.seq)).toEqual([5, 4, 3, 2, 1, 0]);
      expect((await collect(w.readBackward({ from: 3, to: 1 }))).map((r) => r.seq)).toEqual([3, 2, 1]);
      expect((await collect(w.readIndexed(INDEXED))).map((r) => r.seq)).toEqual([0, 4]);
      expect((await collect(w.readIndexed(INDEXED, { from: 1 }))).map((r) => r.seq)).toEqual([4]);
      expect((await collect(w.readIndexed(INDEXED, { to: 3 }))).map((r) => r.seq)).toEqual([0]);
      await expect(collect(w.readIndexed(NOT_INDEXED))).rejects.toThrow(TypeError);
      expect(await w.get(4)).toEqual(all[4]);
      expect(await w.get(6)).toBeUndefined();
      expect(await w.getMany([5, 0, 6, 4])).toEqual([all[5], all[0], undefined, all[4]]);
      await w.close();
      expect(w.isClosed).toBe(true);
      await expect(w.lastSeq()).rejects.toThrow(/closed/);
      const r = await store.openRun('a', 'read');
      expect(await collect(r.read())).toEqual(all);
      expect((await collect(r.readIndexed(INDEXED))).map((x) => x.seq)).toEqual([0, 4]);
      await expect(r.append([step(9)], { sync: true })).rejects.toThrow(/open for reading/);
      await r.close();
    });

    it('indexes every type but the per-step one by default', () => {
      expect(INDEXED_TYPES).toContain('run.created');
      expect(INDEXED_TYPES).toContain('checkpoint.committed');
      expect(INDEXED_TYPES).toContain('state.changed'); // the dashboard's state bands
      expect(INDEXED_TYPES).not.toContain('step.finished');
    });

    it('non-sync appends wait for a commit; a close makes everything durable', async () => {
      const t = await make();
      const w = await t.store.createRun('a');
      await w.append([step(0)], { sync: true });
      await w.append([step(1), step(2)], { sync: false });
      expect(await w.committedSeq()).toBe(0);
      expect(await w.lastSeq()).toBe(2);
      await w.flush();
      expect(w.pendingCount).toBe(0);
      await w.append([step(3)], { sync: false });
      await w.close();
      const again = await t.reopen();
      const r = await again.openRun('a', 'read');
      expect(await r.lastSeq()).toBe(3);
      expect(await r.committedSeq()).toBe(3);
      expect((await collect(r.read())).map((x) => x.data)).toEqual([0, 1, 2, 3].map((i) => ({ step: i })));
      await r.close();
    });

    it('expectedSeq: a mismatch rejects the whole append and writes nothing', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      expect(await w.append([step(0)], { sync: true, expectedSeq: 0 })).toEqual([0]);
      const err = await w.append([step(1), step(2)], { sync: true, expectedSeq: 0 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WrongExpectedSeqError);
      expect(err).toMatchObject({ runId: 'a', expectedSeq: 0, actualSeq: 1 });
      expect(await w.lastSeq()).toBe(0);
      expect(await w.append([step(1)], { sync: false, expectedSeq: 1 })).toEqual([1]);
      await expect(w.append([step(2)], { sync: false, expectedSeq: 5 })).rejects.toThrow(WrongExpectedSeqError);
      expect(await w.lastSeq()).toBe(1);
      for (const bad of [-1, 1.5, NaN, '2' as unknown as number]) {
        await expect(w.append([step(2)], { sync: true, expectedSeq: bad })).rejects.toThrow(TypeError);
      }
      expect(await w.lastSeq()).toBe(1);
      await w.close();
    });

    it('one writer per run; each new writer has a higher fence; readers have 0', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      expect(w.fence).toBeGreaterThan(0);
      await expect(store.openRun('a', 'write')).rejects.toThrow(RunLockedError);
      expect((await store.holder('a'))?.pid).toBe(process.pid);
      expect(await store.liveWriter('a')).toBeNull();
      const first = w.fence;
      await w.close();
      expect(await store.holder('a')).toBeNull();
      const w2 = await store.openRun('a', 'write');
      expect(w2.fence).toBeGreaterThan(first);
      const r = await store.openRun('a', 'read');
      expect(r.fence).toBe(0);
      expect(r.mode).toBe('read');
      await r.close();
      await w2.close();
    });

    it('a reader sees what a writer appended while both are open', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      await fill(w, 10);
      const r = await store.openRun('a', 'read');
      expect(await r.lastSeq()).toBe(9);
      expect((await collect(r.read({ from: 8 }))).map((x) => x.seq)).toEqual([8, 9]);
      await w.append([step(10)], { sync: true });
      await r.close();
      const r2 = await store.openRun('a', 'read');
      expect(await r2.lastSeq()).toBe(10);
      await r2.close();
      await w.close();
    });

    it('summaries are written with the committed mark; null when the summarizer declines', async () => {
      const t = await make();
      expect(await t.store.readSummary('nope')).toBeNull();
      const w = await t.store.createRun('a');
      expect(await t.store.readSummary('a')).toBeNull();
      let decline = false;
      w.setSummarizer((seq) => (decline ? null : { upTo: seq, loss: 0.5 }));
      await w.append([step(0), step(1)], { sync: true });
      expect(await t.store.readSummary('a')).toEqual({ seq: 1, summary: { upTo: 1, loss: 0.5 } });
      await w.append([step(2)], { sync: false });
      // Not committed yet: the summary still describes seq 1.
      expect(await t.store.readSummary('a')).toEqual({ seq: 1, summary: { upTo: 1, loss: 0.5 } });
      await w.append([step(3)], { sync: true });
      expect(await t.store.readSummary('a')).toEqual({ seq: 3, summary: { upTo: 3, loss: 0.5 } });
      decline = true;
      await w.append([step(4)], { sync: true });
      expect(await t.store.readSummary('a')).toBeNull();
      decline = false;
      await w.append([step(5)], { sync: false });
      await w.close();
      const again = await t.reopen();
      expect(await again.readSummary('a')).toEqual({ seq: 5, summary: { upTo: 5, loss: 0.5 } });
      const r = await again.openRun('a', 'read');
      expect(() => r.setSummarizer(() => 1)).toThrow(/reading/);
      await r.close();
    });

    it('a summarizer that throws or gives what JSON cannot carry stores no summary, and the commit still happens', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      for (const bad of [() => ({ loss: NaN }), () => ({ t: new Float32Array(1) }), (): unknown => { throw new Error('no'); }]) {
        w.setSummarizer(bad);
        const [seq] = await w.append([step(0)], { sync: true });
        expect(await w.committedSeq()).toBe(seq);
        expect(await store.readSummary('a')).toBeNull();
      }
      w.setSummarizer(null);
      await w.append([step(1)], { sync: true });
      expect(await store.readSummary('a')).toBeNull();
      await w.close();
    });

    it('range arguments that are not integers are a RangeError', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      await fill(w, 3);
      await expect(collect(w.read({ from: 0.5 }))).rejects.toThrow(RangeError);
      await expect(collect(w.readBackward({ to: NaN }))).rejects.toThrow(RangeError);
      await expect(collect(w.readIndexed(INDEXED, { to: 1.5 }))).rejects.toThrow(RangeError);
      await expect(w.get(0.5)).rejects.toThrow(RangeError);
      await expect(w.getMany([1, 0.5])).rejects.toThrow(RangeError);
      await w.close();
    });

    it('follow yields the records so far, then each new one, and stops on abort', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      await fill(w, 3);
      const ac = new AbortController();
      const seen: number[] = [];
      const following = (async () => {
        for await (const r of store.follow('a', 1, ac.signal)) {
          seen.push(r.seq);
          if (r.seq === 5) ac.abort();
        }
      })();
      await w.append([step(3)], { sync: false });
      await w.append([step(4), step(5)], { sync: true });
      await following;
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      // An aborted signal ends a follow at once, and a removed run ends it with what it had.
      const stop = new AbortController();
      stop.abort();
      expect(await collect(store.follow('a', 0, stop.signal))).toEqual([]);
      await w.close();
      const ac2 = new AbortController();
      const got: number[] = [];
      const untilRemoved = (async () => {
        for await (const r of store.follow('a', 4, ac2.signal)) got.push(r.seq);
      })();
      await new Promise((r) => setTimeout(r, 50));
      await store.removeRuns(['a']);
      await untilRemoved;
      expect(got).toEqual([4, 5]);
    });

    it('createRun of an existing run, unknown runs, removal all or nothing', async () => {
      const { store } = await make();
      const a = await store.createRun('a');
      await a.append([step(0)], { sync: true });
      await a.close();
      await expect(store.createRun('a')).rejects.toThrow(RunExistsError);
      await expect(store.openRun('zz', 'read')).rejects.toThrow(UnknownRunError);
      expect(await store.holder('zz')).toBeNull();
      expect(await store.readSummary('zz')).toBeNull();
      expect(await store.recordedParent('zz')).toBeUndefined();
      expect(await store.changeToken('zz')).not.toBe(await store.changeToken('a'));
      await expect(store.runBytes('zz')).rejects.toThrow(UnknownRunError);
      await expect(store.openRun('zz', 'write')).rejects.toThrow(UnknownRunError);
      const b = await store.createRun('b', { parent: 'a' });
      expect(await store.recordedParent('b')).toBe('a');
      expect(await store.recordedParent('a')).toBeNull();
      expect(await store.listRuns()).toEqual(['a', 'b']);
      expect(await store.hasRun('b')).toBe(true);
      expect(await store.isEmptyRun('b')).toBe(true);
      expect(await store.isEmptyRun('a')).toBe(false);
      // b is held: nothing is removed.
      await expect(store.removeRuns(['a', 'b'])).rejects.toThrow(RunLockedError);
      await expect(store.removeRuns(['a', 'zz'])).rejects.toThrow(UnknownRunError);
      expect(await store.listRuns()).toEqual(['a', 'b']);
      await b.close();
      // An empty run whose creator is gone is claimed again.
      const b2 = await store.createRun('b');
      await b2.close();
      await store.removeRuns(['a', 'b']);
      expect(await store.listRuns()).toEqual([]);
      expect(await store.hasRun('a')).toBe(false);
    });

    it('rejects a payload JSON cannot carry, writing nothing', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      for (const bad of [NaN, Infinity, new Float32Array(2), { x: 1n }, () => 1, new Map()]) {
        await expect(w.append([step(0), { type: 't', data: { bad } }], { sync: true })).rejects.toThrow(TypeError);
      }
      await expect(w.append([{ type: '', data: 1 }], { sync: true })).rejects.toThrow(TypeError);
      await expect(w.append([{ type: 't', data: undefined }], { sync: true })).rejects.toThrow(TypeError);
      expect(await w.lastSeq()).toBe(-1);
      await w.close();
    });

    it('changeToken changes when the log does; runBytes counts the log', async () => {
      const { store } = await make();
      const w = await store.createRun('a');
      await w.append([step(0)], { sync: true });
      const t1 = await store.changeToken('a');
      expect(await store.changeToken('a')).toBe(t1);
      await w.append([step(1)], { sync: true });
      const t2 = await store.changeToken('a');
      expect(t2).not.toBe(t1);
      const bytes = await store.runBytes('a');
      expect(bytes.content).toBeGreaterThan(0);
      expect(bytes.allocated).toBeGreaterThanOrEqual(bytes.content);
      expect(await store.checkIntegrity('a')).toEqual([]);
      await w.close();
    });

    it('blobs: put, get, verify, has, list, sizes', async () => {
      const { store } = await make();
      const b = store.blobs;
      const bytes = new Uint8Array([1, 2, 3, 4, 5]);
      const h = await b.put(bytes);
      expect(h).toBe(sha256Hex(bytes));
      expect(await b.put(bytes)).toBe(h);
      expect(await b.get(h)).toEqual(bytes);
      expect(await b.has(h)).toBe(true);
      expect(await b.verify(h)).toBeNull();
      expect(await b.size(h)).toBe(5);
      expect(await b.allocatedBytes(h)).toBeGreaterThanOrEqual(5);
      const more = [new Uint8Array([9]), new Uint8Array([8, 8])];
      const hs = await b.putMany(more);
      expect(hs).toEqual(more.map(sha256Hex));
      expect(await b.list()).toEqual([h, ...hs].sort());
      const missing = sha256Hex(new Uint8Array([0]));
      expect(await b.has(missing)).toBe(false);
      await expect(b.get(missing)).rejects.toThrow(MissingBlobError);
      expect(await b.verify(missing)).toMatch(missing.slice(0, 12));
      await expect(b.has('nope')).rejects.toThrow(TypeError);
      expect(await store.checkIntegrity(null)).toEqual([]);
    });

    it('sweep deletes what no run references, keeping live, intended and young blobs', async () => {
      const { store } = await make();
      const b = store.blobs;
      const [live, dead, intended] = await b.putMany([new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
      const intent = b.intent('a');
      await intent.add([intended!]);
      // Young: a grace period longer than their age keeps them all.
      const young = await b.sweep({ live: async () => new Set([live!]), graceMs: 60_000 });
      expect(young.deleted).toEqual([]);
      const dry = await b.sweep({ live: async () => new Set([live!]), graceMs: 0, dryRun: true });
      expect(dry.deleted).toEqual([dead]);
      expect(await b.has(dead!)).toBe(true);
      // A blob referenced by the time of the second check is kept.
      let calls = 0;
      const late = await b.sweep({ live: async () => new Set(++calls === 1 ? [live!] : [live!, dead!]), graceMs: 0 });
      expect(late.deleted).toEqual([]);
      expect(await b.has(dead!)).toBe(true);
      const swept = await b.sweep({ live: async () => new Set([live!]), graceMs: 0 });
      expect(swept.deleted).toEqual([dead]);
      expect(swept.bytesFreed).toBe(1);
      expect(await b.list()).toEqual([live!, intended!].sort());
      await intent.release();
      const after = await b.sweep({ live: async () => new Set([live!]), graceMs: 0 });
      expect(after.deleted).toEqual([intended]);
      expect(await b.list()).toEqual([live]);
    });

    it('property: any sequence of appends, flushes, closes and reopens reads back as the model', async () => {
      type Cmd = { op: 'append'; n: number; sync: boolean; indexed: boolean } | { op: 'flush' } | { op: 'close' } | { op: 'reopen' };
      const cmd: fc.Arbitrary<Cmd> = fc.oneof(
        { weight: 5, arbitrary: fc.record({ op: fc.constant('append' as const), n: fc.integer({ min: 0, max: 4 }), sync: fc.boolean(), indexed: fc.boolean() }) },
        { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
        { weight: 1, arbitrary: fc.constant({ op: 'close' as const }) },
        { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(cmd, { maxLength: 12 }), async (cmds) => {
          const t = await make();
          let store = t.store;
          const model: Array<{ type: string; data: unknown }> = [];
          let committed = -1;
          let w: EventLog | null = await store.createRun('p');
          const check = async (log: EventLog): Promise<void> => {
            const got: StoredRecord[] = await collect(log.read());
            expect(got.map((r) => ({ type: r.type, data: r.data }))).toEqual(model);
            expect(got.map((r) => r.seq)).toEqual(model.map((_, i) => i));
            expect((await collect(log.readBackward())).map((r) => r.seq)).toEqual(model.map((_, i) => i).reverse());
            const idx = model.flatMap((r, i) => (r.type === INDEXED ? [i] : []));
            expect((await collect(log.readIndexed(INDEXED))).map((r) => r.seq)).toEqual(idx);
            expect(await log.lastSeq()).toBe(model.length - 1);
            expect(await log.committedSeq()).toBe(committed);
          };
          for (const c of cmds) {
            if (c.op === 'append') {
              w ??= await store.openRun('p', 'write');
              const recs = Array.from({ length: c.n }, (_, i) => (c.indexed && i === 0 ? ckpt(model.length + i) : step(model.length + i)));
              await w.append(recs, { sync: c.sync, expectedSeq: model.length });
              model.push(...recs);
              if (c.sync && model.length > 0) committed = model.length - 1;
            } else if (c.op === 'flush') {
              if (w) await w.flush();
            } else if (c.op === 'close') {
              if (w) await w.close();
              w = null;
              if (model.length > 0) committed = model.length - 1;
            } else {
              if (w) await w.close();
              w = null;
              if (model.length > 0) committed = model.length - 1;
              store = await t.reopen();
            }
            if (w) await check(w);
            const r = await store.openRun('p', 'read');
            await check(r);
            await r.close();
          }
          if (w) await w.close();
          await store.close();
        }),
        { numRuns: 15 },
      );
    });
  });
}
