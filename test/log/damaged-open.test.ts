// Issue #8, items 2 and 3. No command may let LevelDB create, repair or compact a database whose
// files are damaged or incomplete (observed: with CURRENT deleted, `resume` let LevelDB start an
// empty database and delete the table holding events 0..1524, for good), and the committed mark
// itself is protected by a second copy (observed: committed.json deleted plus a truncated tail and
// fsck said "no problems"). Real LevelDB, real files, the library's own operations.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { beforeAll, describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { encodeKey } from '../../src/log/codec.js';
import { Store } from '../../src/log/store.js';
import { diskUsage } from '../../src/log/gc.js';
import { blobRefs } from '../../src/log/events.js';
import { branch, exportRun, listRuns, openStore, replay, resume, showState, train } from '../../src/index.js';
import { flipByte, snapshotFiles } from '../chaos/helpers.js';
import { IRIS, runDbPath, tempDir } from '../run/helpers.js';

/** A finished iris run whose LevelDB holds a table (a resume reopened it) and a write-ahead log. */
let pristine: string;

beforeAll(async () => {
  pristine = await tempDir();
  await train({ store: pristine, config: { ...IRIS, runId: 'r' } });
  await resume('r', { store: pristine }); // reopens for writing: LevelDB turns its log into a table
  const names = await fsp.readdir(runDbPath(pristine, 'r'));
  expect(names.some((n) => n.endsWith('.ldb'))).toBe(true);
}, 120_000);

async function copyStore(): Promise<string> {
  const d = await tempDir();
  await fsp.cp(pristine, d, { recursive: true });
  return d;
}

async function tableOf(store: string): Promise<string> {
  return (await fsp.readdir(runDbPath(store, 'r'))).find((n) => n.endsWith('.ldb'))!;
}

/** Every damaged shape of a LevelDB folder, and the file the refusal must name. */
const DAMAGE: Array<{ name: string; file: RegExp; apply: (store: string) => Promise<void> }> = [
  { name: 'CURRENT deleted', file: /runs\/r\/log\/CURRENT is missing/, apply: (s) => fsp.rm(path.join(runDbPath(s, 'r'), 'CURRENT')) },
  { name: 'CURRENT garbled', file: /runs\/r\/log\/CURRENT is malformed/, apply: (s) => fsp.writeFile(path.join(runDbPath(s, 'r'), 'CURRENT'), 'MANIFEST-zz\n') },
  { name: 'CURRENT a directory', file: /runs\/r\/log\/CURRENT is a (directory|folder)/, apply: async (s) => {
    await fsp.rm(path.join(runDbPath(s, 'r'), 'CURRENT'));
    await fsp.mkdir(path.join(runDbPath(s, 'r'), 'CURRENT'));
  } },
  { name: 'MANIFEST deleted', file: /runs\/r\/log\/MANIFEST-\d+ is missing/, apply: async (s) => {
    const dir = runDbPath(s, 'r');
    const current = (await fsp.readFile(path.join(dir, 'CURRENT'), 'utf8')).trim();
    await fsp.rm(path.join(dir, current));
  } },
  { name: 'MANIFEST damaged', file: /runs\/r\/log\/MANIFEST-\d+ is damaged \(record at byte \d+ .* fails its checksum/, apply: async (s) => {
    const dir = runDbPath(s, 'r');
    const current = (await fsp.readFile(path.join(dir, 'CURRENT'), 'utf8')).trim();
    await flipByte(path.join(dir, current), 12);
  } },
  { name: 'table deleted', file: /runs\/r\/log\/\d+\.ldb is missing/, apply: async (s) => fsp.rm(path.join(runDbPath(s, 'r'), await tableOf(s))) },
  { name: 'table truncated', file: /runs\/r\/log\/\d+\.ldb is \d+ bytes but MANIFEST-\d+ says \d+/, apply: async (s) => {
    const f = path.join(runDbPath(s, 'r'), await tableOf(s));
    await fsp.truncate(f, Math.floor((await fsp.stat(f)).size / 2));
  } },
];

/** Every operation that opens a run, for writing or for reading. */
const OPERATIONS: Array<{ name: string; run: (store: string, scratch: string) => Promise<unknown> }> = [
  { name: 'resume', run: (store) => resume('r', { store }) },
  { name: 'export', run: (store, scratch) => exportRun('r', { store, out: path.join(scratch, 'model') }) },
  { name: 'replay', run: (store) => replay('r', { store, verify: true }) },
  { name: 'branch', run: (store) => branch('r@ckpt:1', { store, overrides: { runId: 'b' } }) },
  { name: 'state', run: async (store) => {
    const s = await openStore(store);
    try {
      return await s.state('r');
    } finally {
      await s.close();
    }
  } },
  { name: 'open for writing', run: async (store) => {
    const s = await Store.open(store);
    try {
      await (await s.openRun('r', 'write')).close();
    } finally {
      await s.close();
    }
  } },
];

/** The mark a committed file holds (committed.json also carries the run's summary; its copy does not). */
async function markOf(file: string): Promise<{ seq: unknown; crc: unknown }> {
  const { seq, crc } = JSON.parse(await fsp.readFile(file, 'utf8')) as { seq: unknown; crc: unknown };
  return { seq, crc };
}

describe('no command opens a damaged LevelDB', () => {
  for (const damage of DAMAGE) {
    it(`${damage.name}: every operation refuses, naming the run's file, and every byte stays`, async () => {
      const store = await copyStore();
      await damage.apply(store);
      const runDir = path.join(store, 'runs', 'r');
      const before = await snapshotFiles(runDir);
      for (const op of OPERATIONS) {
        const scratch = await tempDir();
        const err = (await op.run(store, scratch).then(
          () => null,
          (e: unknown) => e as Error,
        ))!;
        expect(err, `${op.name} succeeded on a damaged run`).toBeInstanceOf(Error);
        expect(err.message, op.name).toMatch(damage.file);
        expect(err.message.split('\n'), op.name).toHaveLength(1);
        expect(err.message, op.name).not.toMatch(/tmp\/read-|retrace-read-/); // the real file, never a temp copy
        expect(await snapshotFiles(runDir), `${op.name} changed the run's files`).toEqual(before);
      }
      // The branch was refused before its run was created.
      expect(await fsp.readdir(path.join(store, 'runs'))).toEqual(['r']);
      // And fsck reports the damage, changing nothing either.
      const report = await fsck(store);
      expect(report.ok).toBe(false);
      expect(await snapshotFiles(runDir)).toEqual(before);
    }, 120_000);
  }

  it('a table with a damaged block but its recorded size: writers refuse naming it before LevelDB rewrites anything', async () => {
    const store = await copyStore();
    const table = await tableOf(store);
    const file = path.join(runDbPath(store, 'r'), table);
    await flipByte(file, Math.floor((await fsp.stat(file)).size / 3));
    const runDir = path.join(store, 'runs', 'r');
    const before = await snapshotFiles(runDir);
    for (const op of OPERATIONS.filter((o) => o.name === 'resume' || o.name === 'open for writing' || o.name === 'export')) {
      const err = await op.run(store, await tempDir()).then(() => null, (e: unknown) => e as Error);
      expect(err, op.name).toBeInstanceOf(Error);
      if (op.name !== 'export') expect(err!.message, op.name).toMatch(new RegExp(`runs/r/log/${table} is damaged`));
      expect(await snapshotFiles(runDir), `${op.name} changed the run's files`).toEqual(before);
    }
  }, 120_000);

  it('putting CURRENT back after every refused operation recovers every event', async () => {
    const store = await copyStore();
    const current = path.join(runDbPath(store, 'r'), 'CURRENT');
    const saved = await fsp.readFile(current);
    await fsp.rm(current);
    for (const op of OPERATIONS) await op.run(store, await tempDir()).catch(() => {});
    await fsp.writeFile(current, saved);
    expect((await fsck(store)).ok).toBe(true);
    const r = await replay('r', { store, verify: true });
    expect(r.identical).toBe(true);
  }, 120_000);
});

/** Deletes events from..to in the run's LevelDB, as a lost tail of the log would. */
async function dropEvents(store: string, from: number, to: number): Promise<void> {
  const db = new ClassicLevel<string, string>(runDbPath(store, 'r'));
  await db.open();
  try {
    for (let s = from; s <= to; s++) await db.del(encodeKey(s));
  } finally {
    await db.close();
  }
}

async function committedSeq(store: string): Promise<number> {
  return (JSON.parse(await fsp.readFile(path.join(store, 'runs', 'r', 'committed.json'), 'utf8')) as { seq: number }).seq;
}

describe('the committed mark has a second copy', () => {
  it('is written beside committed.json and equals it after a run', async () => {
    const dir = path.join(pristine, 'runs', 'r');
    expect(await markOf(path.join(dir, 'committed.copy.json'))).toEqual(await markOf(path.join(dir, 'committed.json')));
  });

  it('committed.json deleted and the log\'s tail lost: fsck and every reader report it', async () => {
    const store = await copyStore();
    const last = await committedSeq(store);
    await fsp.rm(path.join(store, 'runs', 'r', 'committed.json'));
    await dropEvents(store, last - 60, last);
    const report = await fsck(store);
    expect(report.ok).toBe(false);
    const messages = report.problems.map((p) => p.message).join('\n');
    expect(messages).toMatch(/committed\.json is missing but its copy committed\.copy\.json says events up to \d+ were committed/);
    expect(messages).toMatch(new RegExp(`events ${last - 60}\\.\\.${last} are missing`));
    for (const op of OPERATIONS) {
      const err = await op.run(store, await tempDir()).then(() => null, (e: unknown) => e as Error);
      expect(err?.message, op.name).toMatch(/committed\.json is missing/);
    }
  }, 120_000);

  it('committed.json alone deleted, or replaced by an older one: reported, and the writer refuses', async () => {
    const store = await copyStore();
    const file = path.join(store, 'runs', 'r', 'committed.json');
    const saved = await fsp.readFile(file, 'utf8');
    await fsp.rm(file);
    expect((await fsck(store)).problems.map((p) => p.kind)).toContain('committed');
    await expect(resume('r', { store })).rejects.toThrow(/committed\.json is missing/);
    await fsp.writeFile(file, JSON.stringify({ seq: 3, crc: '00000000' }) + '\n');
    await expect(resume('r', { store })).rejects.toThrow(/committed\.json names event 3 .* but its copy committed\.copy\.json names event \d+/);
    await fsp.writeFile(file, saved);
    expect((await fsck(store)).ok).toBe(true);
  }, 120_000);

  it('a copy one commit behind (a kill between the two writes) is no problem, and the next writer brings it up to date', async () => {
    const store = await copyStore();
    const dir = path.join(store, 'runs', 'r');
    const mark = await markOf(path.join(dir, 'committed.json'));
    await fsp.writeFile(path.join(dir, 'committed.copy.json'), JSON.stringify({ seq: 0, crc: '00000000' }) + '\n');
    expect((await fsck(store)).ok).toBe(true);
    await resume('r', { store }); // finished: opens for writing and closes
    expect(await markOf(path.join(dir, 'committed.copy.json'))).toEqual(mark);
  }, 120_000);

  it('both marks deleted from a run that keeps them from its creation: every reader and writer reports it', async () => {
    const store = await copyStore();
    const dir = path.join(store, 'runs', 'r');
    await fsp.rm(path.join(dir, 'committed.json'));
    await fsp.rm(path.join(dir, 'committed.copy.json'));
    const before = await snapshotFiles(dir);
    expect((await fsck(store)).problems.map((p) => p.kind)).toContain('committed');
    for (const op of OPERATIONS) {
      const err = await op.run(store, await tempDir()).then(() => null, (e: unknown) => e as Error);
      expect(err?.message, op.name).toMatch(/committed\.copy\.json is missing, and so is committed\.json, though the run keeps both from its creation/);
    }
    expect(await snapshotFiles(dir)).toEqual(before);
  }, 120_000);

  it('a run from before the copy existed reads as before and gains the copy at its next write', async () => {
    const store = await copyStore();
    const dir = path.join(store, 'runs', 'r');
    // Such a run has neither the copy nor parent.json (both came with the same release).
    await fsp.rm(path.join(dir, 'committed.copy.json'));
    await fsp.rm(path.join(dir, 'parent.json'));
    expect((await fsck(store)).ok).toBe(true);
    const s = await openStore(store);
    expect((await s.state('r')).state).toBe('stopped');
    await s.close();
    await resume('r', { store });
    expect(await markOf(path.join(dir, 'committed.copy.json'))).toEqual(await markOf(path.join(dir, 'committed.json')));
  }, 120_000);
});

describe('a run folder that is a symlink to nothing (a disk not mounted)', () => {
  it('fsck reports it and du refuses, instead of calling its blobs unreferenced', async () => {
    const store = await copyStore();
    await fsp.symlink(path.join(store, 'elsewhere', 'ghost'), path.join(store, 'runs', 'ghost'));
    const report = await fsck(store);
    expect(report.problems).toContainEqual(expect.objectContaining({ runId: 'ghost', kind: 'store', message: expect.stringMatching(/runs\/ghost is a symlink to .*, which does not exist/) }));
    const s = await Store.open(store);
    try {
      await expect(diskUsage(s, blobRefs)).rejects.toThrow(/runs\/ghost is a symlink to .*, which does not exist; du cannot tell which blobs its run names/);
    } finally {
      await s.close();
    }
  });
});

describe('an unreadable branch is still a branch', () => {
  it('runs lists it under its parent (from parent.json), with its error', async () => {
    const store = await copyStore();
    await branch('r@ckpt:1', { store, overrides: { runId: 'kid', stopPoint: 2 } });
    await fsp.rm(path.join(runDbPath(store, 'kid'), 'CURRENT'));
    // `runs` lists a stopped run from the summary stored with its mark, without opening its log:
    // it is still listed under its parent; `state` opens the log and names the damage.
    const listed = (await listRuns({ store })).find((r) => r.runId === 'kid')!;
    expect(listed.parent?.runId).toBe('r');
    await expect(showState('kid', { store })).rejects.toThrow(/runs\/kid\/log\/CURRENT is missing/);
    // Without a summary (a run written before summaries), the listing reads the log: its error.
    const file = path.join(store, 'runs', 'kid', 'committed.json');
    const { seq, crc } = JSON.parse(await fsp.readFile(file, 'utf8')) as { seq: number; crc: string };
    await fsp.writeFile(file, JSON.stringify({ seq, crc }) + '\n');
    const kid = (await listRuns({ store })).find((r) => r.runId === 'kid')!;
    expect(kid.parent?.runId).toBe('r');
    expect(kid.error).toMatch(/runs\/kid\/log\/CURRENT is missing/);
  }, 120_000);
});
