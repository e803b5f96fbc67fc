// Issue #3, part 6: `retrace fsck`. A real run (trained, SIGKILLed, resumed: so its LevelDB has a
// table, a write-ahead log, a manifest, CURRENT) is damaged one byte at a time in every kind of
// file the store has, and fsck must REPORT each damage (not absorb it the way LevelDB's own open
// would), report every problem rather than the first, and leave every file byte-identical.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { killAllChildren, Rng, runCli } from '../../src/chaos/harness.js';
import { encodeKey, encodeValue } from '../../src/log/codec.js';
import { cleanupTempDirs, cli, errorLines, flipByte, json, ROOT, snapshotFiles, startCli, tempDir } from './helpers.js';

let store: string;
const RUN = 'f';
let logDir: string;

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

beforeAll(async () => {
  store = await tempDir();
  const args = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '4', '--checkpoints', '4', '--run-id', RUN, '--store', store, '--json'];
  // Killed mid-run, then resumed: LevelDB turns the first process's log into a table on reopen.
  const killed = await runCli(['train', ...args], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 25 } });
  expect(killed.signal).toBe('SIGKILL');
  const resumed = await cli(['resume', RUN, '--store', store, '--json']);
  expect(resumed.code, resumed.stderr).toBe(0);
  logDir = path.join(store, 'runs', RUN, 'log');
}, 120_000);

async function filesOf(kind: 'ldb' | 'log' | 'manifest' | 'current' | 'committed' | 'blob'): Promise<string[]> {
  const names = await fsp.readdir(logDir);
  switch (kind) {
    case 'ldb':
      return names.filter((n) => /\.(ldb|sst)$/.test(n)).map((n) => path.join(logDir, n));
    case 'log':
      return names.filter((n) => /^\d+\.log$/.test(n)).map((n) => path.join(logDir, n));
    case 'manifest':
      return names.filter((n) => n.startsWith('MANIFEST-')).map((n) => path.join(logDir, n));
    case 'current':
      return [path.join(logDir, 'CURRENT')];
    case 'committed':
      return [path.join(store, 'runs', RUN, 'committed.json')];
    case 'blob': {
      const out: string[] = [];
      for (const shard of await fsp.readdir(path.join(store, 'blobs'))) {
        for (const n of await fsp.readdir(path.join(store, 'blobs', shard))) out.push(path.join(store, 'blobs', shard, n));
      }
      return out.sort();
    }
  }
}

function expectSame(before: Map<string, Buffer>, after: Map<string, Buffer>, what: string): void {
  expect([...after.keys()].sort(), what).toEqual([...before.keys()].sort());
  for (const [name, bytes] of before) expect(Buffer.compare(after.get(name)!, bytes), `${what}: ${name} changed`).toBe(0);
}

describe('fsck', () => {
  it('finds nothing wrong in a healthy run, whose LevelDB has every kind of file', async () => {
    for (const kind of ['ldb', 'log', 'manifest', 'committed', 'blob'] as const) expect((await filesOf(kind)).length, kind).toBeGreaterThan(0);
    const before = await snapshotFiles(store);
    const report = await fsck(store);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.runs[0]!.state).toBe('stopped');
    expect(report.runs[0]!.lastSeq).toBeGreaterThan(60);
    // One pack blob per checkpoint (iris's tensors are all small): initial + 4, the start state's is checkpoint 0's.
    expect(report.blobsChecked).toBeGreaterThanOrEqual(5);
    expectSame(before, await snapshotFiles(store), 'healthy fsck');

    const r = await cli(['fsck', RUN, '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ ok: boolean }>(r).ok).toBe(true);
  });

  // Positions: every byte of the small files, seeded samples of the big ones; each position is
  // XORed with 0xff or with a single bit.
  const cases: Array<{ kind: 'ldb' | 'log' | 'manifest' | 'current' | 'committed' | 'blob'; samples: number | 'all' }> = [
    { kind: 'current', samples: 'all' },
    { kind: 'committed', samples: 'all' },
    { kind: 'manifest', samples: 40 },
    { kind: 'ldb', samples: 40 },
    { kind: 'log', samples: 40 },
    { kind: 'blob', samples: 4 },
  ];
  for (const { kind, samples } of cases) {
    it(`reports a flipped byte anywhere in ${kind} files, and changes nothing`, async () => {
      const rng = new Rng(kind.length * 7919);
      const files = await filesOf(kind);
      const original = await snapshotFiles(store);
      let tried = 0;
      for (const file of kind === 'blob' ? files.slice(0, 3) : files) {
        const size = (await fsp.stat(file)).size;
        // Sampled positions, plus every byte of a table's footer (handles, padding, magic) and
        // index block trailer, and of a log's last record header.
        const tail = kind === 'ldb' ? 56 : kind === 'log' ? 16 : 0;
        const positions =
          samples === 'all'
            ? Array.from({ length: size }, (_, i) => i)
            : [...Array.from({ length: Math.min(size, samples) }, () => rng.int(0, size - 1)), ...Array.from({ length: Math.min(tail, size) }, (_, i) => size - 1 - i)];
        for (const at of positions) {
          for (const mask of [rng.next() < 0.5 ? 0xff : 1 << rng.int(0, 7)]) {
            await flipByte(file, at, mask);
            try {
              const damaged = await snapshotFiles(store);
              const report = await fsck(store, { runId: kind === 'blob' ? undefined : RUN });
              const where = `${path.relative(store, file)} byte ${at} ^ ${mask}`;
              expect(report.ok, `${where} was absorbed`).toBe(false);
              const base = path.basename(file);
              const named = report.problems.some(
                (p) => p.message.includes(base) || (kind === 'committed' && (p.kind === 'committed' || p.kind === 'sequence')),
              );
              expect(named, `${where}: ${report.problems.map((p) => p.message).join(' | ')}`).toBe(true);
              expectSame(damaged, await snapshotFiles(store), `fsck after ${where}`);
              tried += 1;
            } finally {
              await flipByte(file, at, mask);
            }
          }
        }
      }
      expect(tried).toBeGreaterThan(0);
      expectSame(original, await snapshotFiles(store), 'after restoring');
      expect((await fsck(store)).ok).toBe(true);
    }, 120_000);
  }

  it('names the file, the record and the blob of each problem, and reports them all at once', async () => {
    const copy = await tempDir();
    await fsp.cp(store, copy, { recursive: true });
    const dir = path.join(copy, 'runs', RUN, 'log');
    const ldb = (await fsp.readdir(dir)).find((n) => n.endsWith('.ldb'))!;
    const walLog = (await fsp.readdir(dir)).find((n) => /^\d+\.log$/.test(n))!;
    const blob = (await filesOf('blob'))[0]!.replace(store, copy);
    await flipByte(path.join(dir, ldb), 100);
    await flipByte(path.join(dir, walLog), 200);
    await flipByte(blob, 3);
    await fsp.writeFile(path.join(copy, 'runs', RUN, 'committed.json'), '{"seq":99999,"crc":"00000000"}\n');
    const before = await snapshotFiles(copy);
    const report = await fsck(copy);
    const text = report.problems.map((p) => p.message).join('\n');
    expect(text).toContain(`${ldb}:`);
    expect(text).toContain(`${walLog}:`);
    expect(text).toContain(`blob ${path.basename(blob)} is corrupt`);
    expect(text).toMatch(/events up to 99999 were committed/);
    expect(report.problems.filter((p) => p.kind === 'leveldb-file').length).toBeGreaterThanOrEqual(2);
    expectSame(before, await snapshotFiles(copy), 'fsck of a store with four problems');

    const r = await cli(['fsck', '--store', copy]);
    expect(r.code).toBe(1);
    expect(errorLines(r)).toHaveLength(1);
    expect(errorLines(r)[0]).toMatch(/^retrace: fsck found \d+ problem\(s\): /);
    expectSame(before, await snapshotFiles(copy), 'retrace fsck');
  });

  it('checks the log against the machine: transitions, checkpoint snapshots, schema, gaps, committed crc', async () => {
    const copy = await tempDir();
    await fsp.cp(store, copy, { recursive: true });
    const dir = path.join(copy, 'runs', RUN, 'log');
    // A tamperer with valid checksums: only the semantic checks can see these.
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    const all: Array<{ v: number; seq: number; type: string; at: string; data: Record<string, unknown> }> = [];
    for await (const [, v] of db.iterator({ gte: encodeKey(0), lte: '999999999999' })) all.push(JSON.parse(v.slice(9)));
    const put = async (rec: (typeof all)[number]) => db.put(encodeKey(rec.seq), encodeValue(rec).value);
    const ckpt = all.filter((r) => r.type === 'checkpoint.committed')[1]!;
    const machine = ckpt.data.machine as { context: Record<string, unknown> };
    machine.context.plateauWait = 7;
    await put(ckpt);
    const change = all.find((r) => r.type === 'state.changed' && r.seq > ckpt.seq + 5)!;
    (change.data as { to: string }).to = 'plateau';
    await put(change);
    const step = all.find((r) => r.type === 'step.finished' && r.seq > change.seq)!;
    (step.data as { loss: unknown }).loss = 'not a number';
    await put(step);
    const gapAt = all.at(-5)!.seq;
    await db.del(encodeKey(gapAt));
    await db.close();

    const before = await snapshotFiles(copy);
    const report = await fsck(copy, { runId: RUN });
    const text = report.problems.map((p) => `${p.kind} ${p.seq}: ${p.message}`).join('\n');
    expect(text).toContain(`machine ${ckpt.seq}: run "${RUN}": event ${ckpt.seq}: checkpoint`);
    expect(text).toMatch(/stores a machine snapshot that differs from the fold's: machine\.context\.plateauWait is 7/);
    expect(text).toMatch(new RegExp(`machine ${change.seq}: .*state.changed says .* → plateau`));
    expect(text).toMatch(new RegExp(`schema ${step.seq}: .*event ${step.seq} \\(step.finished\\) is malformed`));
    expect(text).toMatch(new RegExp(`sequence ${gapAt}: .*events ${gapAt} are missing`));
    expectSame(before, await snapshotFiles(copy), 'semantic fsck');
  });

  it('is a usage error for an unknown run and a failure for a folder that is not a store', async () => {
    const unknown = await cli(['fsck', 'nope', '--store', store]);
    expect(unknown.code).toBe(1);
    expect(errorLines(unknown)).toEqual([expect.stringMatching(/^retrace: unknown run "nope" \(known runs: "f"\)$/)]);
    const notStore = await tempDir();
    await fsp.writeFile(path.join(notStore, 'notes.txt'), 'hello');
    const r = await cli(['fsck', '--store', notStore]);
    expect(r.code).toBe(1);
    expect(errorLines(r)).toEqual([expect.stringMatching(/is not a retrace store/)]);
    expect(await fsp.readdir(notStore)).toEqual(['notes.txt']);
  });
});

// Issue #8, 12: structural surprises. Each shape used to give a bare EISDIR / EEXIST (and fsck
// aborted on it); now every reader says one line naming the run (or the store) and the real file,
// and fsck reports each without aborting, changing nothing.
describe('structural surprises', () => {
  interface Shape {
    name: string;
    apply: (copy: string) => Promise<void>;
    /** A problem fsck must report. */
    problem: { kind: string; file?: RegExp; message: RegExp };
    /** The command that meets it, and its one line. */
    reader: { args: string[]; line: RegExp };
  }
  const folderFor = async (file: string) => {
    await fsp.rm(file, { recursive: true, force: true });
    await fsp.mkdir(file);
    await fsp.writeFile(path.join(file, 'x'), 'not a LevelDB file');
  };
  const fileFor = async (dir: string) => {
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.writeFile(dir, 'not a folder');
  };
  const levelFile = async (re: RegExp) => (await fsp.readdir(logDir)).find((n) => re.test(n))!;

  it('a folder or a named pipe where a blob, committed.json, owner.json, store.json or a LevelDB file should be, a file where a folder should be, a truncated table: one line each, all reported by fsck', async () => {
    const firstCheckpoint = (await cli(['log', RUN, '--store', store, '--json'])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; data: { weights?: Array<{ hash: string; pack?: { hash: string } }> } })
      .find((e) => e.type === 'checkpoint.committed')!;
    // The blob holding its first tensor: the checkpoint's pack (iris's tensors are all small).
    const first = firstCheckpoint.data.weights![0]!;
    const hash = first.pack?.hash ?? first.hash;
    const shapes: Shape[] = [
      {
        name: 'a blob that is a folder',
        apply: (c) => folderFor(path.join(c, 'blobs', hash.slice(0, 2), hash)),
        problem: { kind: 'blob', message: new RegExp(`blob ${hash} cannot be read: blobs/${hash.slice(0, 2)}/${hash} is a folder, not a file`) },
        reader: { args: ['replay', RUN, '--verify'], line: new RegExp(`^retrace: blob ${hash} cannot be read: .*/blobs/${hash.slice(0, 2)}/${hash} is a folder, not a file`) },
      },
      {
        name: 'a blob shard that is a file',
        apply: (c) => fileFor(path.join(c, 'blobs', hash.slice(0, 2))),
        problem: { kind: 'store', file: new RegExp(`^blobs/${hash.slice(0, 2)}$`), message: /is a file, not a folder of blobs/ },
        reader: { args: ['replay', RUN, '--verify'], line: new RegExp(`^retrace: blob ${hash} cannot be read: .*/blobs/${hash.slice(0, 2)}/${hash} cannot be reached: .*/blobs/${hash.slice(0, 2)} \\(or a folder above it\\) is a file`) },
      },
      {
        name: 'committed.json that is a folder',
        apply: (c) => folderFor(path.join(c, 'runs', RUN, 'committed.json')),
        problem: { kind: 'committed', file: /^runs\/f\/committed\.json$/, message: /runs\/f\/committed\.json is a folder, not a file/ },
        reader: { args: ['state', RUN], line: /^retrace: run "f": .*\/runs\/f\/committed\.json is a folder, not a file; move it aside and run `retrace fsck f`$/ },
      },
      ...(['ldb', 'log', 'MANIFEST', 'CURRENT'] as const).map(
        (kind): Shape => ({
          name: `a LevelDB ${kind} file that is a folder`,
          apply: async (c) => folderFor(path.join(c, 'runs', RUN, 'log', await levelFile(kind === 'ldb' ? /\.ldb$/ : kind === 'log' ? /^\d+\.log$/ : new RegExp(`^${kind}`)))),
          problem: { kind: 'leveldb-file', file: kind === 'ldb' ? /^runs\/f\/log\/\d+\.ldb$/ : kind === 'log' ? /^runs\/f\/log\/\d+\.log$/ : new RegExp(`^runs/f/log/${kind}`), message: /is a folder where LevelDB keeps a file/ },
          reader: { args: ['state', RUN], line: /^retrace: run "f": its LevelDB file .*\/runs\/f\/log\/\S+ is a folder, so LevelDB cannot open the run; move it aside and run `retrace fsck f`$/ },
        }),
      ),
      {
        name: "the run's log folder that is a file",
        apply: (c) => fileFor(path.join(c, 'runs', RUN, 'log')),
        problem: { kind: 'leveldb-file', file: /^runs\/f\/log$/, message: /runs\/f\/log is a file, not the folder of its LevelDB/ },
        reader: { args: ['state', RUN], line: /^retrace: run "f": .*\/runs\/f\/log is a file, not the folder of its LevelDB; move it aside and run `retrace fsck f`$/ },
      },
      {
        name: 'CURRENT naming a manifest that is not there',
        apply: (c) => fsp.writeFile(path.join(c, 'runs', RUN, 'log', 'CURRENT'), 'MANIFEST-000099\n'),
        problem: { kind: 'leveldb-file', file: /^runs\/f\/log\/CURRENT$/, message: /CURRENT: names MANIFEST-000099, which does not exist/ },
        reader: { args: ['state', RUN], line: /^retrace: run "f": runs\/f\/log\/MANIFEST-000099 is missing \(CURRENT names it\); not opening the run/ },
      },
      {
        name: 'a truncated table',
        apply: async (c) => {
          const t = path.join(c, 'runs', RUN, 'log', await levelFile(/\.ldb$/));
          await fsp.truncate(t, Math.floor((await fsp.stat(t)).size / 2));
        },
        problem: { kind: 'leveldb-file', file: /^runs\/f\/log\/\d+\.ldb$/, message: /\.ldb: / },
        // It used to name the reader's private copy (…/tmp/read-<pid>-…/000005.ldb).
        reader: { args: ['state', RUN], line: /^retrace: run "f": runs\/f\/log\/\d+\.ldb is \d+ bytes but MANIFEST-\d+ says \d+ \(the table was truncated or replaced\); not opening the run/ },
      },
      {
        name: 'owner.json that is a folder',
        apply: (c) => folderFor(path.join(c, 'runs', RUN, 'owner.json')),
        problem: { kind: 'store', file: /^runs\/f\/owner\.json$/, message: /owner\.json is a folder, not a file/ },
        reader: { args: ['resume', RUN], line: /^retrace: run "f": .*\/runs\/f\/owner\.json is a folder, not a file; move it aside and run `retrace fsck f`$/ },
      },
      {
        name: "LevelDB's LOCK that is a folder",
        apply: (c) => folderFor(path.join(c, 'runs', RUN, 'log', 'LOCK')),
        problem: { kind: 'leveldb-file', file: /^runs\/f\/log\/LOCK$/, message: /LOCK: is a folder/ },
        reader: { args: ['resume', RUN], line: /^retrace: run "f": its LevelDB file .*\/runs\/f\/log\/LOCK is a folder, so LevelDB cannot open the run/ },
      },
      {
        name: 'store.json that is a folder',
        apply: (c) => folderFor(path.join(c, 'store.json')),
        problem: { kind: 'store', file: /^store\.json$/, message: /^store\.json is a folder, not a file$/ },
        reader: { args: ['state', RUN], line: /^retrace: the store .* is damaged: .*\/store\.json is a folder, not a file; move it aside$/ },
      },
      {
        name: "a run's folder that is a file",
        apply: (c) => fileFor(path.join(c, 'runs', RUN)),
        problem: { kind: 'store', file: /^runs\/f$/, message: /^runs\/f is a file, not a run's folder$/ },
        reader: { args: ['state', RUN], line: /^retrace: run "f": .*\/runs\/f is a file, not a run's folder; move it aside/ },
      },
      // A named pipe in place of a file: a plain read would wait for a writer forever.
      ...(
        [
          ['committed.json', () => `runs/${RUN}/committed.json`, 'committed', /^runs\/f\/committed\.json$/, /committed\.json is a named pipe \(FIFO\), not a file/, ['state', RUN], /^retrace: run "f": .*\/runs\/f\/committed\.json is a named pipe \(FIFO\), not a file/],
          ['owner.json', () => `runs/${RUN}/owner.json`, 'store', /^runs\/f\/owner\.json$/, /owner\.json is a named pipe \(FIFO\), not a file/, ['resume', RUN], /^retrace: run "f": .*\/runs\/f\/owner\.json is a named pipe \(FIFO\), not a file/],
          ['store.json', () => 'store.json', 'store', /^store\.json$/, /^store\.json is a named pipe \(FIFO\), not a file$/, ['state', RUN], /^retrace: the store .* is damaged: .*\/store\.json is a named pipe \(FIFO\), not a file; move it aside$/],
          ['a blob', () => `blobs/${hash.slice(0, 2)}/${hash}`, 'blob', undefined, /is a named pipe \(FIFO\), not a file/, ['replay', RUN, '--verify'], new RegExp(`^retrace: blob ${hash} cannot be read: .* is a named pipe \\(FIFO\\), not a file`)],
          ['CURRENT', () => `runs/${RUN}/log/CURRENT`, 'leveldb-file', /^runs\/f\/log\/CURRENT$/, /CURRENT: is a named pipe \(FIFO\) where LevelDB keeps a file/, ['state', RUN], /^retrace: run "f": its LevelDB file .*\/runs\/f\/log\/CURRENT is a named pipe \(FIFO\), so LevelDB cannot open the run/],
        ] as Array<[string, () => string, string, RegExp | undefined, RegExp, string[], RegExp]>
      ).map(
        ([what, rel, kind, file, message, args, line]): Shape => ({
          name: `${what} that is a named pipe`,
          apply: async (c) => {
            await fsp.rm(path.join(c, rel()), { recursive: true, force: true });
            execFileSync('mkfifo', [path.join(c, rel())]);
          },
          problem: { kind, file, message },
          reader: { args, line },
        }),
      ),
      ...(['runs', 'blobs', 'tmp'] as const).map(
        (sub): Shape => ({
          name: `${sub}/ that is a file`,
          apply: (c) => fileFor(path.join(c, sub)),
          problem: { kind: 'store', file: new RegExp(`^${sub}$`), message: new RegExp(`^${sub} is a file, not a folder$`) },
          reader: { args: ['state', RUN], line: new RegExp(`^retrace: the store .* is damaged: .*/${sub} should be a folder but is a file; move it aside`) },
        }),
      ),
    ];
    for (const shape of shapes) {
      const copy = await tempDir();
      await fsp.cp(store, copy, { recursive: true });
      await shape.apply(copy);
      const before = await snapshotFiles(copy);
      const report = await fsck(copy);
      expect(report.ok, shape.name).toBe(false);
      expect(report.problems, shape.name).toContainEqual(
        expect.objectContaining({ kind: shape.problem.kind, message: expect.stringMatching(shape.problem.message), ...(shape.problem.file ? { file: expect.stringMatching(shape.problem.file) } : {}) }),
      );
      expectSame(before, await snapshotFiles(copy), `fsck of ${shape.name}`);
      const r = await cli([...shape.reader.args, '--store', copy], { timeoutMs: 60_000 });
      expect(r.code, `${shape.name}: ${r.stderr}`).toBe(1);
      expect(errorLines(r), shape.name).toEqual([expect.stringMatching(shape.reader.line)]);
      expect(r.stderr, shape.name).not.toMatch(/tmp\/read-|retrace-read-|EISDIR|EEXIST|ENOTDIR/);
      expectSame(before, await snapshotFiles(copy), `${shape.reader.args[0]} of ${shape.name}`);
    }
  });
});

// Issue #8, 13: a SIGKILLed fsck left a full copy of the run in the system's temp folder forever.
describe('temporary copies outside the store', () => {
  const scratchOf = async (pid: number) => (await fsp.readdir(os.tmpdir())).filter((n) => n.startsWith(`retrace-fsck-${pid}-`) || n.startsWith(`retrace-read-${pid}-`));

  it("a SIGKILLed fsck's copy is removed by the next command; a live process's copy is kept", async () => {
    // Several runs, so fsck holds its copy long enough to be caught with it.
    const copy = await tempDir();
    await fsp.cp(store, copy, { recursive: true });
    for (let i = 2; i <= 8; i += 1) await fsp.cp(path.join(copy, 'runs', RUN), path.join(copy, 'runs', `${RUN}${i}`), { recursive: true });
    let leftover: string[] = [];
    for (let attempt = 0; attempt < 5 && leftover.length === 0; attempt += 1) {
      const child = startCli(['fsck', '--store', copy]);
      const pid = child.child.pid!;
      // Poll for its copy, and SIGKILL it the moment the copy exists.
      for (let i = 0; i < 20_000; i += 1) {
        if ((await scratchOf(pid)).length > 0) {
          child.child.kill('SIGKILL');
          break;
        }
        if (child.child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 1));
      }
      const done = await child.done;
      if (done.signal === 'SIGKILL') leftover = await scratchOf(pid);
    }
    expect(leftover.length, 'fsck was never caught holding its copy').toBeGreaterThan(0);
    // A live process's copy (this test's own pid) must survive the sweep.
    const mine = path.join(os.tmpdir(), `retrace-read-${process.pid}-${'ab'.repeat(6)}`);
    await fsp.mkdir(mine, { recursive: true });
    try {
      const r = await cli(['runs', '--store', copy]);
      expect(r.code, r.stderr).toBe(0);
      for (const n of leftover) expect(existsSync(path.join(os.tmpdir(), n)), `${n} is still there`).toBe(false);
      expect(existsSync(mine)).toBe(true);
    } finally {
      await fsp.rm(mine, { recursive: true, force: true });
    }
  });

  it('fsck itself sweeps copies of dead processes, reader and fsck copies alike', async () => {
    // A pid that certainly ran and is gone: a child that has exited.
    const dead = await deadPid();
    const names = [`retrace-fsck-${dead}-0123abcd`, `retrace-read-${dead}-0123456789ab`];
    for (const n of names) {
      await fsp.mkdir(path.join(os.tmpdir(), n, 'f'), { recursive: true });
      await fsp.writeFile(path.join(os.tmpdir(), n, 'f', 'CURRENT'), 'MANIFEST-000001\n');
    }
    const r = await cli(['fsck', RUN, '--store', store]);
    expect(r.code, r.stderr).toBe(0);
    for (const n of names) expect(existsSync(path.join(os.tmpdir(), n)), n).toBe(false);
  });
});

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('close', r));
  return child.pid!;
}
