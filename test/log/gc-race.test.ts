// gc against writers, interleaved at every step of both protocols. gc and the blob store take a
// `pause(point)` hook (tests only) that they await before each step that touches the blob folder,
// an intent or a log; the Turns scheduler below lets exactly one actor run at a time, from one pause
// to its next, in an order fast-check chooses (and shrinks). Everything in between is real: real
// files, real LevelDB, the real collectGarbage and BlobStore.putMany. The property: once every actor
// is done, every blob named by any event in any run is in the store with its content, whatever the
// order — with two gcs at once, writers reusing blobs gc has condemned or is about to, a parent run
// removed meanwhile, and writers that stop for good between any two steps (a paused or killed
// trainer: its intent stays).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/log/gc.js';
import type { StoredRecord } from '../../src/log/codec.js';
import { FileBlobStore as BlobStore } from '../../src/log/blobs.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

type Pause = (point: string) => Promise<void>;

/** Runs actors one at a time, each from one pause point to its next, in the order `choices` give. */
class Turns {
  private readonly waiting: Array<{ label: string; go: () => void }> = [];
  private running = 0;
  private idle: (() => void) | null = null;
  readonly trace: string[] = [];
  readonly errors: unknown[] = [];

  actor(name: string, body: (pause: Pause) => Promise<void>): void {
    this.running += 1;
    const pause: Pause = (point) =>
      new Promise<void>((go) => {
        this.waiting.push({ label: `${name}: ${point}`, go });
        this.running -= 1;
        this.wake();
      });
    body(pause)
      .catch((err: unknown) => this.errors.push(err))
      .finally(() => {
        this.running -= 1;
        this.wake();
      });
  }

  private wake(): void {
    if (this.running === 0 && this.idle) {
      const f = this.idle;
      this.idle = null;
      f();
    }
  }

  private quiet(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => (this.idle = resolve));
  }

  /**
   * Until every actor has finished (or waits at a pause that `stopped` says never resumes). Each
   * turn lets one actor (the `pick`th of those waiting, by name) take up to `burst` steps in a row:
   * bursts make the deep orders (a writer doing two steps inside one of gc's gaps) likely enough
   * to be found, and with bursts of 1 every interleaving is still reachable.
   */
  async run(turns: ReadonlyArray<{ pick: number; burst: number }>, stopped: (label: string) => boolean = () => false): Promise<number[]> {
    /** How many actors could go at each turn (for the exhaustive search). */
    const arity: number[] = [];
    const actorOf = (label: string): string => label.slice(0, label.indexOf(':'));
    for (let k = 0; ; k += 1) {
      await this.quiet();
      const open = () => this.waiting.filter((w) => !stopped(w.label));
      const names = [...new Set(open().map((w) => actorOf(w.label)))].sort();
      if (names.length === 0) return arity;
      arity.push(names.length);
      const turn = turns[k % Math.max(1, turns.length)] ?? { pick: 0, burst: 1 };
      const name = names[turn.pick % names.length]!;
      for (let step = 0; step < turn.burst; step += 1) {
        if (step > 0) await this.quiet();
        const w = open().find((x) => actorOf(x.label) === name);
        if (!w) break;
        this.waiting.splice(this.waiting.indexOf(w), 1);
        this.trace.push(w.label);
        this.running += 1;
        w.go();
      }
    }
  }
}

/**
 * Every schedule, depth first (stateless model checking): `once(turns)` runs the actors from a
 * fresh start with those picks (bursts of 1; past the given picks it takes the first actor) and
 * returns how many actors could go at each turn; every alternative at every turn is run in turn.
 */
async function everySchedule(once: (turns: Array<{ pick: number; burst: number }>) => Promise<number[]>): Promise<number> {
  const todo: number[][] = [[]];
  let runs = 0;
  while (todo.length > 0) {
    const prefix = todo.pop()!;
    const arity = await once(prefix.map((pick) => ({ pick, burst: 1 })).concat(Array.from({ length: 200 }, () => ({ pick: 0, burst: 1 }))));
    runs += 1;
    for (let i = arity.length - 1; i >= prefix.length; i -= 1) {
      for (let alt = 1; alt < arity[i]!; alt += 1) todo.push([...prefix, ...Array<number>(i - prefix.length).fill(0), alt]);
    }
  }
  return runs;
}

const refs = (rec: StoredRecord): string[] => (rec.type === 'snapshot' ? (rec.data as { blobs: string[] }).blobs : []);

/** Blob contents 0..7: 0-1 named by run "base", 2-4 orphans (a killed commit's), 5-7 new. */
const content = (k: number): Uint8Array => new Uint8Array(64 + k).fill(k + 1);
const hashOf = (k: number): string => createHash('sha256').update(content(k)).digest('hex');

interface WriterPlan {
  contents: number[];
  /** Stops for good at its Nth pause (a paused or killed trainer), or never. */
  stopAt: number | null;
}

const writerPlan = fc.record({
  contents: fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 4 }),
  // Most writers finish; one in four stops for good somewhere.
  stopAt: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 8 }), weight: 1 }),
});

async function everyNamedBlobIsIntact(dir: string): Promise<void> {
  const store = await Store.open(dir);
  try {
    for (const runId of await store.listRuns()) {
      const log = await store.openRun(runId, 'read');
      try {
        for await (const rec of log.read()) {
          for (const h of refs(rec)) {
            const bytes = await fsp.readFile(store.blobs.pathOf(h)).catch(() => null);
            expect(bytes, `run ${runId} event ${rec.seq} names blob ${h.slice(0, 8)}, which is gone`).not.toBeNull();
            expect(createHash('sha256').update(bytes!).digest('hex')).toBe(h);
          }
        }
      } finally {
        await log.close();
      }
    }
  } finally {
    await store.close();
  }
}

describe('gc vs writers, every interleaving of their steps', () => {
  it('one writer reusing an old orphan blob, one gc: every order of their steps keeps it', async () => {
    const runs = await everySchedule(async (schedule) => {
      const dir = await tempDir('retrace-gcall-');
      {
        const store = await Store.open(dir);
        await store.blobs.put(content(2));
        const old = new Date(Date.now() - 3600_000);
        await fsp.utimes(store.blobs.pathOf(hashOf(2)), old, old);
        await store.close();
      }
      const turns = new Turns();
      const stores: Store[] = [];
      // The writer's run exists (empty) before: its creation is not a step that matters here.
      const wstore = await Store.open(dir);
      stores.push(wstore);
      const log = await wstore.createRun('w');
      turns.actor('w', async (pause) => {
        const blobs = new BlobStore(dir, { pause });
        const intent = blobs.intent('w');
        const [h] = await blobs.putMany([content(2)], undefined, intent);
        await pause('append');
        await log.append([{ type: 'snapshot', data: { blobs: [h] } }], { sync: true });
        await pause('release');
        await intent.release();
      });
      turns.actor('gc', async (pause) => {
        const store = await Store.open(dir);
        stores.push(store);
        await collectGarbage(store, refs, { graceMs: 0, pause });
      });
      const arity = await turns.run(schedule);
      if (turns.errors.length > 0) throw turns.errors[0];
      for (const st of stores) await st.close();
      try {
        await everyNamedBlobIsIntact(dir);
      } catch (err) {
        throw new Error(`${(err as Error).message}\norder: ${turns.trace.join(' | ')}`);
      }
      await cleanupTempDirs();
      return arity;
    });
    // One writer of 4 or 5 steps and a gc of 6 or 7: hundreds of orders, each run from scratch.
    expect(runs).toBeGreaterThan(100);
  }, 240_000);


  it('never deletes a blob a committed or about-to-commit event names', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(writerPlan, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 2 }),
        fc.boolean(),
        fc.array(fc.record({ pick: fc.nat(), burst: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 100 }),
        async (writers, gcs, removeBase, schedule) => {
          const dir = await tempDir('retrace-gcrace-');
          // Before the actors: run "base" names contents 0-1; 2-4 are orphans, old.
          {
            const store = await Store.open(dir);
            const base = await store.createRun('base');
            const [a, b] = await store.blobs.putMany([content(0), content(1)]);
            await base.append([{ type: 'snapshot', data: { blobs: [a, b] } }], { sync: true });
            await base.close();
            await store.blobs.putMany([content(2), content(3), content(4)]);
            const old = new Date(Date.now() - 3600_000);
            for (const h of await store.blobs.list()) await fsp.utimes(store.blobs.pathOf(h), old, old);
            await store.close();
          }
          const turns = new Turns();
          const stores: Store[] = [];
          const stops = new Map<string, number>();
          writers.forEach((plan, i) => {
            const name = `w${i}`;
            if (plan.stopAt !== null) stops.set(name, plan.stopAt);
            turns.actor(name, async (pause) => {
              let n = 0;
              const counted: Pause = (point) => pause(`#${++n} ${point}`);
              const store = await Store.open(dir, { pause: counted });
              stores.push(store);
              await counted('create run');
              const log = await store.createRun(name);
              const intent = store.blobs.intent(name);
              const names = await store.blobs.putMany(plan.contents.map(content), undefined, intent);
              await counted('append');
              await log.append([{ type: 'snapshot', data: { blobs: names } }], { sync: true });
              await counted('release');
              await intent.release();
            });
          });
          for (let g = 0; g < gcs; g += 1) {
            turns.actor(`gc${g}`, async (pause) => {
              const store = await Store.open(dir);
              stores.push(store);
              await collectGarbage(store, refs, { graceMs: 0, pause });
            });
          }
          if (removeBase) {
            turns.actor('rm', async (pause) => {
              const store = await Store.open(dir);
              stores.push(store);
              await pause('rm base');
              await store.removeRun('base');
            });
          }
          // A writer stopped at its Nth pause never resumes (its process paused or killed).
          const stopped = (label: string): boolean => {
            const m = /^(w\d+): #(\d+) /.exec(label);
            return m !== null && stops.has(m[1]!) && Number(m[2]) >= stops.get(m[1]!)!;
          };
          await turns.run(schedule, stopped);
          // Every actor that was not stopped has finished.
          if (turns.errors.length > 0) throw turns.errors[0];
          for (const s of stores) await s.close().catch(() => {});
          try {
            await everyNamedBlobIsIntact(dir);
          } catch (err) {
            throw new Error(`${(err as Error).message}\norder: ${turns.trace.join(' | ')}`);
          }
          // A last gc with nobody running: the condemned copies are all gone or back.
          const store = await Store.open(dir);
          try {
            await collectGarbage(store, refs, { graceMs: 0 });
            expect(await store.blobs.listCondemned()).toEqual([]);
          } finally {
            await store.close();
          }
          await everyNamedBlobIsIntact(dir);
        },
      ),
      { numRuns: 40 },
    );
  }, 240_000);
});
