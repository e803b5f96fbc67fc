// Model-based test of RunLog: random sequences of appends (sync or not), range reads, clean
// close+reopen and "crashes" (the in-memory buffer dropped, then close) against a model that is an
// array of records. At a crash, non-sync records appended since the last sync append (or clean
// close) may be lost — but only a suffix of them: what survives is always a gap-free, in-order
// prefix that contains every record up to the last sync append.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunLog } from '../../src/log/run-log.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, collect, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

interface Model {
  /** Record ids, in seq order: ids[seq]. */
  ids: number[];
  /** ids[0..mustSurvive) are guaranteed to survive a crash. */
  mustSurvive: number;
  nextId: number;
}

interface Real {
  store: Store;
  log: RunLog;
}

type Cmd = fc.AsyncCommand<Model, Real>;

async function idsOnDisk(log: RunLog): Promise<number[]> {
  const recs = await collect(log.read());
  recs.forEach((r, i) => expect(r.seq).toBe(i));
  return recs.map((r) => (r.data as { id: number }).id);
}

class AppendCmd implements Cmd {
  constructor(
    readonly n: number,
    readonly sync: boolean,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const recs = Array.from({ length: this.n }, (_, i) => ({ type: this.sync && i === this.n - 1 ? 'checkpoint' : 'step', data: { id: m.nextId + i } }));
    const seqs = await r.log.append(recs, { sync: this.sync });
    expect(seqs).toEqual(Array.from({ length: this.n }, (_, i) => m.ids.length + i));
    for (let i = 0; i < this.n; i++) m.ids.push(m.nextId++);
    if (this.sync) {
      m.mustSurvive = m.ids.length;
      expect(await r.log.committedSeq()).toBe(m.ids.length - 1);
    }
    expect(await r.log.lastSeq()).toBe(m.ids.length - 1);
  }
  toString(): string {
    return `append(${this.n}, ${this.sync ? 'sync' : 'nosync'})`;
  }
}

class ReadCmd implements Cmd {
  constructor(
    readonly from: number | undefined,
    readonly to: number | undefined,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const got = await collect(r.log.read({ from: this.from, to: this.to }));
    const lo = this.from ?? 0;
    const hi = Math.min(this.to ?? Infinity, m.ids.length - 1);
    const want = m.ids.slice(lo, hi + 1);
    expect(got.map((x) => (x.data as { id: number }).id)).toEqual(want);
    expect(got.map((x) => x.seq)).toEqual(want.map((_, i) => lo + i));
  }
  toString(): string {
    return `read(${this.from}..${this.to})`;
  }
}

class ReopenCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.log.close();
    r.log = await r.store.openRun('run', 'write');
    m.mustSurvive = m.ids.length; // a clean close loses nothing
    expect(await idsOnDisk(r.log)).toEqual(m.ids);
    expect(await r.log.committedSeq()).toBe(m.ids.length - 1);
  }
  toString(): string {
    return 'close+reopen';
  }
}

class CrashCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.log.__dropUnflushedForTest();
    await r.log.close();
    r.log = await r.store.openRun('run', 'write');
    const survived = await idsOnDisk(r.log);
    expect(survived.length).toBeGreaterThanOrEqual(m.mustSurvive);
    expect(survived).toEqual(m.ids.slice(0, survived.length));
    m.ids = survived;
    m.mustSurvive = survived.length;
    expect(await r.log.lastSeq()).toBe(survived.length - 1);
  }
  toString(): string {
    return 'crash';
  }
}

describe('RunLog model', () => {
  it('matches the model under random appends, reads, reopens and crashes', async () => {
    const size = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 6 }), weight: 6 }, { arbitrary: fc.integer({ min: 120, max: 300 }), weight: 1 });
    const seq = fc.option(fc.integer({ min: 0, max: 800 }), { nil: undefined });
    const commands = [
      fc.tuple(size, fc.boolean()).map(([n, s]) => new AppendCmd(n, s)),
      fc.tuple(size, fc.constant(false)).map(([n, s]) => new AppendCmd(n, s)),
      fc.tuple(seq, seq).map(([a, b]) => new ReadCmd(a, b)),
      fc.constant(new ReopenCmd()),
      fc.constant(new CrashCmd()),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        const store = await Store.open(await tempDir());
        const real: Real = { store, log: await store.createRun('run') };
        try {
          await fc.asyncModelRun(() => ({ model: { ids: [], mustSurvive: 0, nextId: 0 }, real }), cmds);
        } finally {
          await store.close();
          await cleanupTempDirs();
        }
      }),
      { numRuns: 60 },
    );
  });
});
