// Issue #3, part 4: the corruption and bad-input matrix, at the CLI (`node bin/retrace.js`, the
// built dist/). Every case asserts the exit code, that stderr is ONE line naming the problem, and
// that the committed data is still there afterwards. Needs `npm run build`.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookEnv, killAllChildren, runCli } from '../../src/chaos/harness.js';
import { encodeKey, encodeValue } from '../../src/log/codec.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, cli, json, ROOT, snapshotFiles, startCli, tempDir, type Live, expectOneLine } from './helpers.js';

const SMALL = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '4', '--checkpoints', '4'];
/** The store with a finished run "r" of SMALL, and its final weightsHash. */
let base: string;
let baseHash: string;
/** The store with run "c" of SMALL, SIGKILLed after step 40 (its last checkpoint is 2, at step 30). */
let cut: string;
const live: Live[] = [];

afterAll(async () => {
  for (const l of live) l.child.kill('SIGKILL');
  killAllChildren();
  await cleanupTempDirs();
});

beforeAll(async () => {
  base = await tempDir();
  const r = await cli(['train', ...SMALL, '--run-id', 'r', '--store', base, '--json']);
  expect(r.code, r.stderr).toBe(0);
  baseHash = json<{ weightsHash: string }>(r).weightsHash;
  cut = await tempDir();
  const k = await runCli(['train', ...SMALL, '--run-id', 'c', '--store', cut, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 40 } });
  expect(k.signal).toBe('SIGKILL');
}, 120_000);

function expectSame(before: Map<string, Buffer>, after: Map<string, Buffer>): void {
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [name, bytes] of before) expect(Buffer.compare(after.get(name)!, bytes), `${name} changed`).toBe(0);
}

async function copyOf(store: string): Promise<string> {
  const d = await tempDir();
  await fsp.cp(store, d, { recursive: true });
  return d;
}

/** A run's records through the CLI (`retrace log --json`). */
async function logOf(store: string, run: string, range: string[] = []): Promise<Array<{ seq: number; type: string; data: Record<string, unknown> }>> {
  const r = await cli(['log', run, '--store', store, '--json', ...range]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { seq: number; type: string; data: Record<string, unknown> });
}

async function withDb<T>(store: string, run: string, fn: (db: ClassicLevel<string, string>) => Promise<T>): Promise<T> {
  const db = new ClassicLevel<string, string>(path.join(store, 'runs', run, 'log'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open({ createIfMissing: false });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function runsIn(store: string): Promise<string[]> {
  return (await fsp.readdir(path.join(store, 'runs'))).sort();
}

describe('damaged logs', () => {
  it('a flipped byte inside a record: every reader and writer names the run and the seq; the other records are intact', async () => {
    const store = await copyOf(base);
    const before = await logOf(store, 'r');
    const seq = before.find((x) => x.type === 'step.finished' && x.data.step === 10)!.seq;
    await withDb(store, 'r', async (db) => {
      const value = (await db.get(encodeKey(seq)))!;
      const at = value.indexOf('"loss":') + 9; // a digit of the loss: the crc no longer matches
      const flipped = value.slice(0, at) + (value[at] === '1' ? '2' : '1') + value.slice(at + 1);
      await db.put(encodeKey(seq), flipped);
    });
    const out = await tempDir();
    // `state` reads only what its answer needs (reader.ts): at the end it does not meet the
    // damaged record, at the record it does; every command that reads the whole log names it.
    expect((await cli(['state', 'r', '--store', store])).code).toBe(0);
    for (const args of [['log', 'r'], ['state', 'r', '--at', String(seq)], ['replay', 'r', '--verify'], ['resume', 'r'], ['export', 'r', '--out', out], ['branch', 'r@ckpt:1', '--run-id', 'b2']]) {
      expectOneLine(await cli([...args, '--store', store]), 1, new RegExp(`^retrace: run "r": event ${seq} is corrupt \\(checksum mismatch: stored [0-9a-f]{8}, computed [0-9a-f]{8}\\)$`));
    }
    expect(await runsIn(store)).toEqual(['r']);
    // Everything else is still there, unchanged.
    expect(await logOf(store, 'r', ['--to', String(seq - 1)])).toEqual(before.slice(0, seq));
    expect(await logOf(store, 'r', ['--from', String(seq + 1)])).toEqual(before.slice(seq + 1));
    const fsck = await cli(['fsck', 'r', '--store', store, '--json']);
    expect(fsck.code).toBe(1);
    expect(json<{ problems: Array<{ kind: string; seq: number }> }>(fsck).problems).toEqual([expect.objectContaining({ kind: 'record', seq })]);
  });

  it("a flipped byte in LevelDB's write-ahead log: readers report the lost committed events; writers refuse and rewrite nothing", async () => {
    const store = await copyOf(base);
    const wal = path.join(store, 'runs', 'r', 'log', '000003.log');
    expect(existsSync(wal)).toBe(true);
    const fh = await fsp.open(wal, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 5000);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 5000);
    await fh.close();
    const files = await snapshotFiles(path.join(store, 'runs', 'r'));
    // Readers check their copy as writers check the original: both name the damaged file (LevelDB
    // would drop the intact records after the damage, which is only acceptable for a copy, and
    // would show as "events … are missing").
    const damaged = /^retrace: run "r": runs\/r\/log\/000003\.log is damaged \(record at byte \d+ .* fails its checksum .*\) and \d+ intact batch\(es\) of events follow it; not opening the run/;
    const out = await tempDir();
    for (const args of [['state', 'r'], ['log', 'r'], ['resume', 'r'], ['replay', 'r'], ['export', 'r', '--out', out]]) {
      expectOneLine(await cli([...args, '--store', store]), 1, damaged);
    }
    expect(await fsp.readdir(out)).toEqual([]);
    const fsck = await cli(['fsck', 'r', '--store', store]);
    expectOneLine(fsck, 1, /^retrace: fsck found \d+ problem\(s\): run "r": 000003\.log: record at byte \d+ .* fails its checksum/);
    // Nothing touched the damaged files: the intact records after the damage can still be salvaged.
    const after = await snapshotFiles(path.join(store, 'runs', 'r'));
    for (const [name, bytes] of files) if (name !== 'log/LOG') expect(Buffer.compare(after.get(name)!, bytes), name).toBe(0);
  });

  it('a log written by a newer schema version, and a newer store: "upgrade retrace"', async () => {
    const store = await copyOf(base);
    const seq = 20;
    await withDb(store, 'r', async (db) => {
      const value = (await db.get(encodeKey(seq)))!;
      const rec = JSON.parse(value.slice(9)) as { v: number; seq: number; type: string; at: string; data: unknown };
      await db.put(encodeKey(seq), encodeValue({ ...rec, v: 2 }).value);
    });
    const re = new RegExp(`^retrace: run "r": event ${seq} has schema version 2, newer than this retrace reads \\(up to 1\\); upgrade retrace$`);
    for (const args of [['state', 'r', '--at', String(seq)], ['log', 'r'], ['resume', 'r'], ['replay', 'r']]) expectOneLine(await cli([...args, '--store', store]), 1, re);
    expect((await logOf(store, 'r', ['--to', String(seq - 1)])).length).toBe(seq);

    const newer = await copyOf(base);
    await fsp.writeFile(path.join(newer, 'store.json'), JSON.stringify({ format: 'retrace-store', version: 2 }));
    expectOneLine(await cli(['runs', '--store', newer]), 1, /is a version 2 retrace store; this retrace reads up to version 1, upgrade retrace$/);
  });
});

describe('missing and damaged snapshot blobs', () => {
  /** The checkpoint's tensors; iris's are all small, so their bytes are in the checkpoint's pack blob. */
  async function checkpointTensors(store: string, run: string, which: 'first' | 'last'): Promise<Array<{ name: string; hash: string; pack: { hash: string } }>> {
    const ckpts = (await logOf(store, run)).filter((x) => x.type === 'checkpoint.committed');
    const c = which === 'first' ? ckpts[0]! : ckpts.at(-1)!;
    return c.data.weights as Array<{ name: string; hash: string; pack: { hash: string } }>;
  }
  const blobPath = (store: string, hash: string) => path.join(store, 'blobs', hash.slice(0, 2), hash);

  for (const damage of ['truncated', 'deleted'] as const) {
    it(`a ${damage} blob: resume, export and replay say which blob`, async () => {
      const cases: Array<{ store: string; run: string; which: 'first' | 'last'; args: (out: string) => string[] }> = [
        { store: cut, run: 'c', which: 'last', args: () => ['resume', 'c'] },
        { store: base, run: 'r', which: 'last', args: (out) => ['export', 'r', '--checkpoint', 'last', '--out', out] },
        { store: base, run: 'r', which: 'first', args: () => ['replay', 'r', '--verify'] },
      ];
      for (const c of cases) {
        const store = await copyOf(c.store);
        const tensor = (await checkpointTensors(store, c.run, c.which))[0]!;
        const hash = tensor.pack.hash;
        const file = blobPath(store, hash);
        const bytes = await fsp.readFile(file);
        if (damage === 'deleted') await fsp.rm(file);
        else await fsp.truncate(file, Math.floor(bytes.length / 2));
        const records = await logOf(store, c.run);
        const out = await tempDir();
        const re =
          damage === 'deleted'
            ? new RegExp(`^retrace: pack blob ${hash} holding tensor ${tensor.name} is missing from the store; run \`retrace fsck\`$`)
            : new RegExp(`^retrace: tensor ${tensor.name} in pack blob ${hash} is corrupt: the pack's bytes hash to [0-9a-f]{64}; run \`retrace fsck\`$`);
        expectOneLine(await cli([...c.args(out), '--store', store]), 1, re);
        // The log is untouched; with the blob back, the operation works.
        expect(await logOf(store, c.run)).toEqual(records);
        await fsp.writeFile(file, bytes);
        const again = await cli([...c.args(out), '--store', store, '--json']);
        expect(again.code, again.stderr).toBe(0);
      }
    });
  }
});

describe('wrong store, run, point', () => {
  it('a folder that is not a retrace store is refused and left as it was', async () => {
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'notes.txt'), 'mine');
    expectOneLine(await cli(['train', ...SMALL, '--store', dir]), 1, new RegExp(`^retrace: ${dir} is not a retrace store \\(it has other files and no store\\.json\\)$`));
    expectOneLine(await cli(['state', 'r', '--store', dir]), 1, /is not a retrace store/);
    expect(await fsp.readdir(dir)).toEqual(['notes.txt']);
    const file = path.join(dir, 'notes.txt');
    expectOneLine(await cli(['runs', '--store', file]), 1, new RegExp(`^retrace: ${file} is not a retrace store \\(it is a file\\)$`));
    const garbled = await tempDir();
    await fsp.writeFile(path.join(garbled, 'store.json'), '{"format":"something-else"}');
    expectOneLine(await cli(['runs', '--store', garbled]), 1, /its store\.json is not a retrace store's/);
  });

  it('an unknown run', async () => {
    const store = await copyOf(base);
    const out = await tempDir();
    for (const args of [['state', 'nope'], ['log', 'nope'], ['resume', 'nope'], ['replay', 'nope'], ['export', 'nope', '--out', out], ['branch', 'nope@ckpt:1'], ['fsck', 'nope']]) {
      expectOneLine(await cli([...args, '--store', store]), 1, /^retrace: unknown run "nope" \(known runs: "r"\)$/);
    }
    expect(await runsIn(store)).toEqual(['r']);
  });

  it('an unknown point', async () => {
    const store = await copyOf(base);
    expectOneLine(await cli(['branch', 'r@ckpt:99', '--store', store]), 1, /^retrace: run r has no checkpoint 99 \(it has 0, 1, 2, 3, 4\)$/);
    expectOneLine(await cli(['branch', 'r@step:9999', '--store', store]), 1, /^retrace: run r has no step 9999 \(it has done 60 steps\)$/);
    expectOneLine(await cli(['branch', 'r@sideways', '--store', store]), 2, /^retrace: bad point "sideways": expected best, last, ckpt:K, int:N, step:N or an event number$/);
    expectOneLine(await cli(['state', 'r', '--at', '99999', '--store', store]), 1, /^retrace: run r has no event 99999 \(its last event is \d+\)$/);
    expect(await runsIn(store)).toEqual(['r']);
  });
});

describe('bad configuration and data (nothing is created)', () => {
  it('config with wrong types, negative numbers or unknown keys: exit 2 naming the field', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    const cases: Array<[string, RegExp]> = [
      ['{"batchSize": "8"}', /config field "batchSize": .*expected number/i],
      ['{"lr": -0.1}', /config field "lr": .*(>0|too small|positive)/i],
      ['{"checkpoints": 0}', /config field "checkpoints"/],
      ['{"seed": 1.5}', /config field "seed": .*int/i],
      ['{"batchSze": 8}', /unknown config key "batchSze"; allowed keys: runId, dataset/],
      ['[1, 2]', /a config must be a JSON object/],
      ['{"lr": 0.1,', /is not valid JSON/],
    ];
    const runs = cases.map(async ([text, re], i) => {
      const file = path.join(dir, `c${i}.json`);
      await fsp.writeFile(file, text);
      const r = await cli(['train', '--config', file, '--store', store]);
      expectOneLine(r, 2, re);
    });
    const flags: Array<[string[], RegExp]> = [
      [['--batch-size', '-3'], /field "batchSize"/],
      [['--lr', 'abc'], /field "lr": .*expected number/i],
      [['--optimizer', 'nesterov'], /field "optimizer": must be one of sgd, momentum, adam, rmsprop/],
      [['--stop-point', '0'], /field "stopPoint"/],
      // Values that used to be accepted although the run could not be read back (issue #8, 11).
      [['--stop-point', '1e17'], /^retrace: flags: config field "stopPoint": Too big: expected number to be <=1000000$/],
      [['--batch-size', '1e8'], /^retrace: flags: config field "batchSize": Too big: expected number to be <=16777216$/],
      [['--training-examples', '1e10'], /^retrace: flags: config field "trainingExamples": Too big: expected (number|int) to be <=4294967296$/],
      // Within the schema's bounds, but more than wasm can hold for iris's MLP: refused with the largest batch that fits.
      [['--batch-size', '16777216', '--backend', 'wasm'], /^retrace: config field "batchSize": 16777216 examples need about .* more than the wasm backend's 1\.0 GiB batch limit; use --batch-size \d+ or less$/],
    ];
    const flagRuns = flags.map(async ([args, re]) => expectOneLine(await cli(['train', '--dataset', 'iris', ...args, '--store', store]), 2, re));
    // Files that are not files: /dev/zero grew memory until it failed, a named pipe waited forever.
    execFileSync('mkfifo', [path.join(dir, 'pipe.json')]);
    const notFiles: Array<[string, RegExp]> = [
      ['/dev/zero', /^retrace: config file \/dev\/zero is a device, not a file$/],
      [path.join(dir, 'pipe.json'), /^retrace: config file .*pipe\.json is a named pipe \(FIFO\), not a file$/],
      [dir, /^retrace: config file .* is a folder, not a file$/],
    ];
    const fileRuns = notFiles.map(async ([file, re]) => expectOneLine(await cli(['train', '--config', file, '--store', store], { timeoutMs: 60_000 }), 2, re));
    // initFrom a folder whose model.json is a named pipe.
    const init = path.join(dir, 'init');
    await fsp.mkdir(init);
    execFileSync('mkfifo', [path.join(init, 'model.json')]);
    const initRun = cli(['train', '--dataset', 'iris', '--init-from', init, '--store', store], { timeoutMs: 60_000 }).then((r) =>
      expectOneLine(r, 1, /^retrace: initFrom: cannot read .*init\/model\.json: .*model\.json is a named pipe \(FIFO\), not a file$/),
    );
    await Promise.all([...runs, ...flagRuns, ...fileRuns, initRun]);
    expect(await fsp.readdir(path.join(store, 'runs')).catch(() => [])).toEqual([]);
  });

  it('a CSV with ragged rows or non-numeric cells names the file, line and column', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'ragged.csv'), 'x1,x2,label\n1,2,a\n3,4\n5,6,b\n');
    await fsp.writeFile(path.join(dir, 'text.csv'), 'x1,x2,label\n1,2,a\n3,four,b\n5,6,a\n');
    await fsp.writeFile(path.join(dir, 'inf.csv'), 'x1,x2,label\n1,2,a\n3,Infinity,b\n5,6,a\n');
    const [ragged, text, inf] = await Promise.all([
      cli(['train', '--dataset', 'csv:ragged.csv', '--store', store], { cwd: dir }),
      cli(['train', '--dataset', 'csv:text.csv', '--store', store], { cwd: dir }),
      cli(['train', '--dataset', 'csv:inf.csv', '--store', store], { cwd: dir }),
    ]);
    expectOneLine(ragged, 1, /^retrace: CSV ragged\.csv: line 3: expected 3 columns \(as in the header\), got 2$/);
    expectOneLine(text, 1, /^retrace: CSV text\.csv: line 3, column 2 \("x2"\): "four" is not a number; every column except the label must be numeric$/);
    expectOneLine(inf, 1, /^retrace: CSV inf\.csv: line 3, column 2 \("x2"\): "Infinity" is not finite/);
    // A device never ends: refused before a byte is read (it used to grow memory to ~700 MB).
    expectOneLine(await cli(['train', '--dataset', 'csv:/dev/zero', '--store', store]), 1, /^retrace: CSV path \/dev\/zero is a device, not a regular file \(dataset "csv:\/dev\/zero"\); give a CSV file$/);
    expect(await fsp.readdir(path.join(store, 'runs')).catch(() => [])).toEqual([]);
  });

  it('a module: model that throws or returns a non-model', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'throws.mjs'), "export default () => { throw new Error('no layers today'); };\n");
    await fsp.writeFile(path.join(dir, 'number.mjs'), 'export default () => 42;\n');
    await fsp.writeFile(path.join(dir, 'object.mjs'), "export default () => ({ layers: 'not really' });\n");
    await fsp.writeFile(path.join(dir, 'syntax.mjs'), 'export default () => {{;\n');
    const run = (m: string) => cli(['train', '--dataset', 'iris', '--model', `module:${m}`, '--store', store], { cwd: dir });
    const [throws, number, object, syntax] = await Promise.all([run('throws.mjs'), run('number.mjs'), run('object.mjs'), run('syntax.mjs')]);
    expectOneLine(throws, 1, /^retrace: model module .*throws\.mjs threw: no layers today$/);
    expectOneLine(number, 1, /^retrace: model module .*number\.mjs must return a tf\.LayersModel \(tf\.sequential or tf\.model\), got a number$/);
    expectOneLine(object, 1, /^retrace: model module .*object\.mjs must return a tf\.LayersModel .*got an object$/);
    expectOneLine(syntax, 1, /^retrace: model module .*syntax\.mjs failed to load: /);
    expect(await fsp.readdir(path.join(store, 'runs')).catch(() => [])).toEqual([]);
  });

  it('a module: model that calls process.exit: exit 1 naming the module, not exit 0 with empty --json output', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'exits.mjs'), 'export default () => process.exit(0);\n');
    const r = await cli(['train', '--dataset', 'iris', '--model', 'module:exits.mjs', '--store', store, '--json'], { cwd: dir });
    expectOneLine(r, 1, /^retrace: model module .*exits\.mjs called process\.exit\(0\); a model module must return a model, not end the process$/);
    expect(r.stdout).toBe('');
    expect(await fsp.readdir(path.join(store, 'runs')).catch(() => [])).toEqual([]);
  });

  it('a module: model that spins forever: one Ctrl-C ends the process (no JavaScript handler is installed while module code runs)', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    const spin = path.join(dir, 'spin.mjs');
    await fsp.writeFile(spin, "export default () => { process.stderr.write('spinning\\n'); for (;;) {} };\n");
    const t = startCli(['train', '--dataset', 'iris', '--model', `module:${spin}`, '--store', store, '--json']);
    live.push(t);
    await t.waitFor(/^spinning$/);
    t.child.kill('SIGINT');
    // Before, a graceful-stop listener swallowed it (and a second one) while the loop ran: the
    // process never ended. The timeout only bounds a failure; the assertion is how it ended.
    const ended = await Promise.race([t.done, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
    expect(ended, 'the process ignored SIGINT').not.toBeNull();
    expect(ended!.signal).toBe('SIGINT');
    expect(await fsp.readdir(path.join(store, 'runs')).catch(() => [])).toEqual([]);
  });
});

describe('divergence, disk errors, signals', () => {
  it('a loss that becomes NaN: stopped as diverged, and the best checkpoint is still exportable', async () => {
    const store = await tempDir();
    const r = await cli(['train', ...SMALL, '--optimizer', 'sgd', '--lr', '1e30', '--run-id', 'nan', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ state: 'stopped', stopReason: 'diverged', bestCheckpoint: 0 });
    const records = await logOf(store, 'nan');
    expect(records.some((x) => x.type === 'step.finished' && x.data.loss === 'NaN')).toBe(true);
    const out = path.join(await tempDir(), 'model');
    const e = await cli(['export', 'nan', '--store', store, '--out', out, '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect(json(e)).toMatchObject({ checkpoint: 0, step: 0 });
    expect(existsSync(path.join(out, 'model.json'))).toBe(true);
    const f = await cli(['fsck', '--store', store, '--json']);
    expect(json<{ ok: boolean }>(f).ok).toBe(true);
  });

  it('a read-only store (a read-only bind mount): every reader works, every writer says so in one line, the store is unchanged', async (ctx) => {
    const src = await copyOf(base);
    const ro = await tempDir('retrace-ro-');
    try {
      execFileSync('mount', ['--bind', src, ro], { stdio: 'pipe' });
    } catch (err) {
      ctx.skip(`cannot bind-mount here (${String((err as Error).message).split('\n')[0]})`);
      return;
    }
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', ro], { stdio: 'pipe' });
      const before = await snapshotFiles(src);
      const expected = await logOf(src, 'r');
      // Readers: the private copy goes to the system's temp folder (it used to fail: ENOENT mkdir …/tmp/read-…).
      expect(await logOf(ro, 'r')).toEqual(expected);
      for (const args of [['state', 'r'], ['runs'], ['du'], ['fsck'], ['replay', 'r', '--verify']]) {
        const r = await cli([...args, '--store', ro, '--json']);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stdout).not.toMatch(/unreadable/);
      }
      // Writers: one line naming the store and why.
      const out = await tempDir();
      for (const [args, re] of [
        [['resume', 'r'], /^retrace: cannot open run "r" for writing: the store .* is not writable \(read-only file system\); reading it works, writing needs write access$/],
        [['export', 'r', '--out', out], /^retrace: cannot open run "r" for writing: the store .* is not writable/],
        [['train', ...SMALL, '--run-id', 'x'], /^retrace: cannot create run "x": the store .* is not writable \(read-only file system\)/],
      ] as Array<[string[], RegExp]>) {
        expectOneLine(await cli([...args, '--store', ro]), 1, re);
      }
      expectSame(before, await snapshotFiles(src));
    } finally {
      execFileSync('umount', [ro], { stdio: 'pipe' });
    }
  });

  it('ENOSPC on write (a 1 MiB tmpfs): one clear line, reads still work, resumable to the same weights once there is space', async (ctx) => {
    const mnt = await tempDir('retrace-enospc-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      ctx.skip(`cannot mount a tmpfs here (${String((err as Error).message).split('\n')[0]}): ENOSPC is covered by the injected-fault cases only`);
      return;
    }
    try {
      const config = [...SMALL, '--stop-point', '8', '--checkpoints', '8', '--snapshot-every', '1'];
      const store = path.join(mnt, 's');
      const full = await cli(['train', ...config, '--run-id', 'e', '--store', store]);
      expectOneLine(full, 1, /^retrace: disk full while writing \(ENOSPC: no space left on device.*\); everything committed before is kept, resume the run when there is space$/);
      // Reading needs no space on the full disk (the private copy goes elsewhere).
      const state = await cli(['state', 'e', '--store', store, '--json']);
      expect(state.code, state.stderr).toBe(0);
      const stopped = json<{ state: string; step: number }>(state);
      expect(stopped.state).not.toBe('stopped');
      expect(stopped.step).toBeGreaterThan(0);
      const committed = await logOf(store, 'e');

      execFileSync('mount', ['-o', 'remount,size=32m', mnt]);
      const resumed = await cli(['resume', 'e', '--store', store, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      const reference = await cli(['train', ...config, '--run-id', 'ref', '--store', await tempDir(), '--json']);
      expect(json<{ weightsHash: string }>(resumed).weightsHash).toBe(json<{ weightsHash: string }>(reference).weightsHash);
      // Every event that was there before the resume is still there.
      expect((await logOf(store, 'e')).slice(0, committed.length)).toEqual(committed);
      expect(json<{ ok: boolean }>(await cli(['fsck', '--store', store, '--json'])).ok).toBe(true);

      // So little space that LevelDB cannot even record the run's creation: still one line, and the
      // run id can be used again once there is space.
      await fsp.rm(store, { recursive: true, force: true });
      execFileSync('mount', ['-o', 'remount,size=1m', mnt]);
      const small = path.join(mnt, 't');
      // The store exists before the disk fills (reading commands do not create one).
      await (await Store.open(small)).close();
      const freeNow = Number(execFileSync('df', ['-B1', '--output=avail', mnt]).toString().trim().split('\n').at(-1));
      execFileSync('fallocate', ['-l', String(freeNow - 8192), path.join(mnt, 'filler')]);
      expectOneLine(await cli(['train', ...SMALL, '--run-id', 'tiny', '--store', small]), 1, /^retrace: disk full while writing \(.*[Nn]o space left on device.*\); everything committed before is kept/);
      await fsp.rm(path.join(mnt, 'filler'));
      const again = await cli(['train', ...SMALL, '--run-id', 'tiny', '--store', small, '--json']);
      expect(again.code, again.stderr).toBe(0);
      expect(json<{ weightsHash: string }>(again).weightsHash).toBe(baseHash);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  // blob-before:1: the start state's pack (iris's tensors are all small: one pack blob per state).
  it('EIO injected at blob-before:1 (the start state, written before run.created): one clear line; train claims the empty run again', async () => {
    const store = await tempDir();
    const r = await cli(['train', ...SMALL, '--run-id', 'io', '--store', store], { env: hookEnv({ fail: 'blob-before:1:EIO' }) });
    expectOneLine(r, 1, /^retrace: write error \(EIO: i\/o error \(injected at blob-before:1\)\); everything committed before is kept$/);
    const again = await cli(['train', ...SMALL, '--run-id', 'io', '--store', store, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(json<{ weightsHash: string }>(again).weightsHash).toBe(baseHash);
  });

  // blob-before:2: checkpoint 1's pack (the start state's pack is the first blob, and checkpoint 0
  // names the same one, already stored).
  for (const point of ['blob-before:2', 'sync-batch-before:2', 'committed-before:2', 'batch-after:3']) {
    it(`EIO injected at ${point}: one clear line, non-zero exit, resumable to the same weights`, async () => {
      const store = await tempDir();
      const r = await cli(['train', ...SMALL, '--run-id', 'io', '--store', store], { env: hookEnv({ fail: `${point}:EIO` }) });
      expectOneLine(r, 1, new RegExp(`^retrace: write error \\(EIO: i/o error \\(injected at ${point}\\)\\); everything committed before is kept$`));
      const state = json<{ state: string }>(await cli(['state', 'io', '--store', store, '--json']));
      expect(state.state).not.toBe('stopped');
      const resumed = await cli(['resume', 'io', '--store', store, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(json<{ weightsHash: string }>(resumed).weightsHash).toBe(baseHash);
    });
  }

  it('a run locked by a live trainer: a second train or resume names its pid; log and state work while it trains', async () => {
    const store = await tempDir();
    const trainer = startCli(['train', '--dataset', 'iris', '--batch-size', '8', '--stop-point', '400', '--checkpoints', '40', '--run-id', 'L', '--store', store]);
    live.push(trainer);
    await trainer.waitFor(/checkpoint 1 \(epoch\)/);
    const pid = trainer.child.pid!;
    expectOneLine(await cli(['train', ...SMALL, '--run-id', 'L', '--store', store]), 1, new RegExp(`^retrace: run "L" already exists and is being written by another process \\(pid ${pid} on `));
    expectOneLine(await cli(['resume', 'L', '--store', store]), 1, new RegExp(`^retrace: run "L" is being written by another process \\(pid ${pid} on .*, since `));
    expectOneLine(await cli(['export', 'L', '--out', await tempDir(), '--store', store]), 1, new RegExp(`pid ${pid}`));
    const state = await cli(['state', 'L', '--store', store, '--json']);
    expect(state.code, state.stderr).toBe(0);
    expect(['warmup', 'training', 'checkpointing', 'plateau']).toContain(json<{ state: string }>(state).state);
    const records = await logOf(store, 'L');
    expect(records.filter((x) => x.type === 'checkpoint.committed').length).toBeGreaterThanOrEqual(2);
    const fsck = await cli(['fsck', 'L', '--store', store, '--json']);
    expect(json<{ ok: boolean; runs: Array<{ writer: { pid: number } | null }> }>(fsck)).toMatchObject({ ok: true, runs: [{ writer: { pid } }] });
    trainer.child.kill('SIGINT');
    const done = await trainer.done;
    expect(done.code, done.stderr).toBe(0);
    // Everything it had committed is still there after it stopped.
    const after = await logOf(store, 'L');
    expect(after.slice(0, records.length).map((x) => x.seq)).toEqual(records.map((x) => x.seq));
    expect(json<{ state: string; stopReason: string }>(await cli(['state', 'L', '--store', store, '--json']))).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
  });

  it('SIGINT and SIGTERM: an interrupt checkpoint, stopped (interrupted), exit 0, and resume ends where an uninterrupted run ends', async () => {
    const config = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '40', '--checkpoints', '4'];
    const reference = await cli(['train', ...config, '--run-id', 'ref', '--store', await tempDir(), '--json']);
    expect(reference.code, reference.stderr).toBe(0);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const store = await tempDir();
      const t = startCli(['train', ...config, '--run-id', 's', '--store', store, '--json']);
      live.push(t);
      await t.waitFor(/checkpoint 1 \(epoch\)/);
      t.child.kill(signal);
      const done = await t.done;
      expect(done.code, done.stderr).toBe(0);
      expect(json(done)).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
      expect(done.stderr).toContain(`${signal}: committing a checkpoint, then stopping`);
      const records = await logOf(store, 's');
      expect(records.filter((x) => x.type === 'checkpoint.committed').at(-1)!.data.kind).toBe('interrupt');
      const resumed = await cli(['resume', 's', '--store', store, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(json<{ weightsHash: string }>(resumed).weightsHash).toBe(json<{ weightsHash: string }>(reference).weightsHash);
      expect((await logOf(store, 's')).slice(0, records.length)).toEqual(records);
    }
  });
});
