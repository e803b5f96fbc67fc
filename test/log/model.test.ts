// Model-based test of RunLog: random sequences of appends (sync or not), range reads, clean
// close+reopen and "crashes" (the in-memory buffer dropped, then close) against a model that is an
// array of records. At a crash, non-sync records appended since the last sync append (or clean
// close) may be lost — but only a suffix of them: what survives is always a gap-free, in-order
// prefix that contains every record up to the last sync append. The second model (below) adds a
// second run sharing blobs (a branch), gc, and crashes before a sync append completes.
import { promises as fsPromises } from 'node:fs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/log/gc.js';
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

// ---------------------------------------------------------------------------------------------
// The store with two runs that share blobs (a branch), blob puts before the sync append that names
// them (as a checkpoint does), garbage collection, removing the parent, and crashes BEFORE a sync
// append completes: with nothing of it written, and with its LevelDB batch synced but
// committed.json not yet advanced. After every crash and reopen (a new Store, as a new process):
// each run's log is a gap-free prefix of the model that holds everything that was durable, its
// committed seq is within it, and every blob a surviving record names is there and intact.

type RunName = 'a' | 'b';

interface RunModel {
  /** Record ids in seq order. */
  ids: number[];
  /** ids[0..mustSurvive) are durable. */
  mustSurvive: number;
}

interface StoreModel {
  runs: Record<RunName, RunModel | null>;
  nextId: number;
  /** Whether run a was removed (its blobs stay only if b names them). */
  removed: boolean;
}

interface StoreReal {
  dir: string;
  store: Store;
  logs: Partial<Record<RunName, RunLog>>;
  /** Blob hash per pool index (blob contents are shared between the runs by design). */
  pool: Map<number, string>;
}

type SCmd = fc.AsyncCommand<StoreModel, StoreReal>;

const POOL = 5;
const blobBytes = (k: number) => new Uint8Array(64 + k * 16).fill(k + 1);
const blobRefsOf = (rec: { data: unknown }): string[] => ((rec.data as { blobs?: string[] }).blobs ?? []);

async function recordsOf(log: RunLog): Promise<Array<{ seq: number; id: number; blobs: string[] }>> {
  const recs = await collect(log.read());
  return recs.map((r, i) => {
    expect(r.seq).toBe(i);
    return { seq: r.seq, id: (r.data as { id: number }).id, blobs: blobRefsOf(r) };
  });
}

/** Every blob a record of any open run names is in the store and hashes to its name. */
async function checkBlobs(r: StoreReal): Promise<void> {
  for (const log of Object.values(r.logs)) {
    for (const rec of await recordsOf(log!)) {
      for (const h of rec.blobs) {
        const bytes = await r.store.blobs.get(h); // MissingBlobError / CorruptBlobError otherwise
        expect(bytes.byteLength).toBeGreaterThan(0);
      }
    }
  }
}

/** The blob hash of pool entry k, written (durably) now. */
async function putBlob(r: StoreReal, k: number): Promise<string> {
  const h = await r.store.blobs.put(blobBytes(k));
  r.pool.set(k, h);
  return h;
}

function records(m: StoreModel, n: number, blob: string | null): Array<{ type: string; data: unknown }> {
  return Array.from({ length: n }, (_, i) => {
    const id = m.nextId + i;
    return i === n - 1 && blob ? { type: 'checkpoint', data: { id, blobs: [blob] } } : { type: 'step', data: { id } };
  });
}

/** A process crash: every open log loses its buffer, then a new Store opens what is on disk. */
async function crashAndReopen(m: StoreModel, r: StoreReal): Promise<void> {
  for (const log of Object.values(r.logs)) log!.__dropUnflushedForTest();
  await r.store.close();
  r.store = await Store.open(r.dir);
  r.logs = {};
  for (const name of ['a', 'b'] as const) {
    const run = m.runs[name];
    if (!run) continue;
    const log = await r.store.openRun(name, 'write');
    r.logs[name] = log;
    const ids = (await recordsOf(log)).map((x) => x.id);
    expect(ids.length, `run ${name} lost durable records`).toBeGreaterThanOrEqual(run.mustSurvive);
    expect(ids, `run ${name} is not a prefix of what was appended`).toEqual(run.ids.slice(0, ids.length));
    const committed = await log.committedSeq();
    expect(committed).toBeLessThanOrEqual(ids.length - 1);
    run.ids = ids;
    run.mustSurvive = ids.length;
  }
  await checkBlobs(r);
}

class SAppendCmd implements SCmd {
  constructor(
    readonly target: RunName,
    readonly n: number,
    readonly sync: boolean,
    /** A sync append may name a pool blob, put (durably) just before it, as a checkpoint does. */
    readonly blob: number | null,
  ) {}
  check(m: Readonly<StoreModel>): boolean {
    return m.runs[this.target] !== null;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    const run = m.runs[this.target]!;
    const blob = this.sync && this.blob !== null ? await putBlob(r, this.blob) : null;
    const seqs = await r.logs[this.target]!.append(records(m, this.n, blob), { sync: this.sync });
    expect(seqs[0]).toBe(run.ids.length);
    for (let i = 0; i < this.n; i++) run.ids.push(m.nextId++);
    if (this.sync) {
      run.mustSurvive = run.ids.length;
      expect(await r.logs[this.target]!.committedSeq()).toBe(run.ids.length - 1);
    }
  }
  toString(): string {
    return `${this.target}.append(${this.n}, ${this.sync ? 'sync' : 'nosync'}${this.sync && this.blob !== null ? `, blob ${this.blob}` : ''})`;
  }
}

class BranchCmd implements SCmd {
  check(m: Readonly<StoreModel>): boolean {
    return m.runs.a !== null && m.runs.b === null && !m.removed;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    // The branch's first (sync) record names the blobs of the parent's durable records: shared,
    // never copied.
    const parent = (await recordsOf(r.logs.a!)).slice(0, m.runs.a!.mustSurvive);
    const shared = [...new Set(parent.flatMap((x) => x.blobs))];
    for (const h of shared) expect((await r.store.blobs.get(h)).byteLength).toBeGreaterThan(0);
    const log = await r.store.createRun('b');
    r.logs.b = log;
    await log.append([{ type: 'run.created', data: { id: m.nextId, blobs: shared } }], { sync: true });
    m.runs.b = { ids: [m.nextId++], mustSurvive: 1 };
  }
  toString(): string {
    return 'branch a → b';
  }
}

class GcCmd implements SCmd {
  check(): boolean {
    return true;
  }
  async run(_m: StoreModel, r: StoreReal): Promise<void> {
    // Grace 0: everything no record names goes, so a blob a live record names must never go.
    await collectGarbage(r.store, (rec) => blobRefsOf(rec), { graceMs: 0 });
    await checkBlobs(r);
  }
  toString(): string {
    return 'gc';
  }
}

class RemoveParentCmd implements SCmd {
  check(m: Readonly<StoreModel>): boolean {
    return m.runs.a !== null && m.runs.b !== null;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    await r.logs.a!.close();
    delete r.logs.a;
    await r.store.removeRun('a');
    m.runs.a = null;
    m.removed = true;
    await collectGarbage(r.store, (rec) => blobRefsOf(rec), { graceMs: 0 });
    await checkBlobs(r); // the branch's shared blobs survive its parent
  }
  toString(): string {
    return 'rm a + gc';
  }
}

class SCrashCmd implements SCmd {
  check(): boolean {
    return true;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    await crashAndReopen(m, r);
  }
  toString(): string {
    return 'crash';
  }
}

class SReopenCmd implements SCmd {
  check(): boolean {
    return true;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    await r.store.close(); // clean: flushes with sync
    for (const run of Object.values(m.runs)) if (run) run.mustSurvive = run.ids.length;
    r.logs = {};
    await crashAndReopen(m, r);
  }
  toString(): string {
    return 'close+reopen';
  }
}

/**
 * A sync append that never completes: the process dies either before its LevelDB batch is written
 * ('before-batch') or after the synced batch but before committed.json is renamed into place
 * ('before-mark'). Then the crash.
 */
class CrashBeforeSyncCmd implements SCmd {
  constructor(
    readonly target: RunName,
    readonly n: number,
    readonly at: 'before-batch' | 'before-mark',
    readonly blob: number | null,
  ) {}
  check(m: Readonly<StoreModel>): boolean {
    return m.runs[this.target] !== null;
  }
  async run(m: StoreModel, r: StoreReal): Promise<void> {
    const run = m.runs[this.target]!;
    const log = r.logs[this.target]!;
    const blob = this.blob !== null ? await putBlob(r, this.blob) : null;
    const recs = records(m, this.n, blob);
    for (let i = 0; i < this.n; i++) run.ids.push(m.nextId++);
    if (this.at === 'before-batch') {
      const p = log.append(recs, { sync: true });
      log.__dropUnflushedForTest(); // the queued write has not run yet: nothing of it reaches LevelDB
      await p.catch(() => {});
    } else {
      const rename = fsPromises.rename;
      fsPromises.rename = (async (from: string, to: string) => {
        if (String(to).endsWith('committed.json')) throw Object.assign(new Error('crash before committed.json'), { code: 'EIO' });
        return rename(from, to);
      }) as typeof rename;
      try {
        await expect(log.append(recs, { sync: true })).rejects.toThrow(/crash before committed.json/);
      } finally {
        fsPromises.rename = rename;
      }
      // The batch was synced: every record up to it is durable although committed.json lags.
      run.mustSurvive = run.ids.length;
    }
    await crashAndReopen(m, r);
  }
  toString(): string {
    return `${this.target}.crashBeforeSync(${this.n}, ${this.at}${this.blob !== null ? `, blob ${this.blob}` : ''})`;
  }
}

describe('Store model: two runs sharing blobs, gc, crashes before sync', () => {
  it('keeps every durable record and every blob a record names', async () => {
    const run = fc.constantFrom<RunName>('a', 'b');
    const size = fc.oneof({ arbitrary: fc.integer({ min: 1, max: 5 }), weight: 8 }, { arbitrary: fc.integer({ min: 200, max: 300 }), weight: 1 });
    const blob = fc.option(fc.integer({ min: 0, max: POOL - 1 }), { nil: null });
    const commands = [
      fc.tuple(run, size, fc.boolean(), blob).map(([r, n, s, b]) => new SAppendCmd(r, n, s, b)),
      fc.tuple(run, size, blob).map(([r, n, b]) => new SAppendCmd(r, n, true, b)),
      fc.constant(new BranchCmd()),
      fc.constant(new GcCmd()),
      fc.constant(new RemoveParentCmd()),
      fc.constant(new SCrashCmd()),
      fc.constant(new SReopenCmd()),
      fc.tuple(run, size, fc.constantFrom<'before-batch' | 'before-mark'>('before-batch', 'before-mark'), blob).map(
        ([r, n, at, b]) => new CrashBeforeSyncCmd(r, n, at, b),
      ),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 30 }), async (cmds) => {
        const dir = await tempDir();
        const store = await Store.open(dir);
        const real: StoreReal = { dir, store, logs: { a: await store.createRun('a') }, pool: new Map() };
        await real.logs.a!.append([{ type: 'run.created', data: { id: 0 } }], { sync: true });
        try {
          await fc.asyncModelRun(() => ({ model: { runs: { a: { ids: [0], mustSurvive: 1 }, b: null }, nextId: 1, removed: false }, real }), cmds);
        } finally {
          await real.store.close().catch(() => {});
          await cleanupTempDirs();
        }
      }),
      { numRuns: 50 },
    );
  });
});
