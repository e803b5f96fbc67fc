// `rm` and `export` are all-or-nothing (issue #8, items 8-10), at the CLI (child processes of the
// built bin/retrace.js; needs `npm run build`):
// - a command that fails changes nothing: every file of the store (and of the export folder) is
//   byte-identical after `rm`/`export` refused for a locked run, a locked descendant, a branch
//   whose log cannot be read, an existing --out without --force, an unknown checkpoint;
// - an unreadable child is still a child (parent.json), and a run of an older retrace whose log
//   cannot be read blocks `rm` of any run until it is removed or fixed;
// - an I/O error in the middle of `rm` or `export` (injected at their kill points) is undone;
// - `export --force` replaces only a model folder, as a whole.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hookEnv } from '../../src/chaos/harness.js';
import { cleanupTempDirs, cli, json, ROOT, snapshotFiles, startCli, tempDir, expectOneLine } from './helpers.js';

const TRAIN = ['--dataset', 'iris', '--backend', 'wasm', '--batch-size', '8', '--checkpoints', '2', '--json'];
let base = '';
const holders: ChildProcess[] = [];

beforeAll(async () => {
  base = await tempDir();
  // root → kid → gk, and an unrelated run.
  const runs = [
    ['train', ...TRAIN, '--stop-point', '2', '--run-id', 'root'],
    ['branch', 'root@ckpt:1', ...TRAIN, '--stop-point', '1', '--run-id', 'kid'],
    ['branch', 'kid@last', ...TRAIN, '--stop-point', '1', '--run-id', 'gk'],
    ['train', ...TRAIN, '--stop-point', '1', '--run-id', 'other'],
  ];
  for (const args of runs) {
    const r = await cli([...args, '--store', base]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);

afterEach(async () => {
  for (const h of holders.splice(0)) {
    h.kill('SIGKILL');
    await new Promise((r) => (h.exitCode !== null || h.signalCode !== null ? r(null) : h.once('close', r)));
  }
});
afterAll(cleanupTempDirs);

async function copyOf(store: string): Promise<string> {
  const d = await tempDir();
  await fsp.cp(store, d, { recursive: true });
  return d;
}

/** Another process holding a run open for writing (as a trainer does), until killed. */
async function hold(store: string, runId: string): Promise<number> {
  const storeJs = pathToFileURL(path.join(ROOT, 'dist', 'src', 'log', 'store.js')).href;
  const code = `import { Store } from ${JSON.stringify(storeJs)};
const s = await Store.open(${JSON.stringify(store)});
await s.openRun(${JSON.stringify(runId)}, 'write');
process.stdout.write('ready\\n');
setInterval(() => {}, 1 << 30);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  holders.push(child);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('close', () => reject(new Error(`holder exited: ${err}`)));
  });
  return child.pid!;
}

/**
 * Every file under the folders, as path → bytes (a missing folder is an empty map), except
 * LevelDB's diagnostic `LOG`/`LOG.old`: LevelDB rotates them on every open attempt, even one
 * refused because another process holds the lock (they hold no data; fsck ignores them).
 */
async function filesOf(dirs: string[]): Promise<Map<string, Buffer>> {
  const all = new Map<string, Buffer>();
  for (const d of dirs) {
    let snap = new Map<string, Buffer>();
    try {
      snap = await snapshotFiles(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const [p, b] of snap) if (!/(^|[\\/])log[\\/]LOG(\.old)?$/.test(p)) all.set(path.join(d, p), b);
  }
  return all;
}

function expectSameFiles(after: Map<string, Buffer>, before: Map<string, Buffer>, what: string): void {
  expect([...after.keys()].sort(), what).toEqual([...before.keys()].sort());
  for (const [p, b] of before) expect(after.get(p)!.equals(b), `${what}: ${p} changed`).toBe(true);
}

/** Makes a run's log unreadable the way a damaged disk would: committed.json garbled. */
async function breakRun(store: string, runId: string): Promise<void> {
  await fsp.writeFile(path.join(store, 'runs', runId, 'committed.json'), 'garbage');
}

describe('a failed rm or export changed nothing', () => {
  it('for every failing precondition, every file of the store and of --out is byte-identical afterwards', async () => {
    const cases: Array<{ name: string; setup: (store: string, out: string) => Promise<void>; args: (out: string) => string[]; error: (pids: number[]) => RegExp; code?: number }> = [
      {
        name: 'rm --recursive of a run being written (issue 8: it used to delete the branches first)',
        setup: async () => {},
        args: () => ['rm', 'root', '--recursive'],
        error: ([pid]) => new RegExp(`^retrace: run "root" is being written by another process \\(pid ${pid} `),
      },
      {
        name: 'rm --recursive with a descendant being written',
        setup: async () => {},
        args: () => ['rm', 'root', '--recursive'],
        error: ([pid]) => new RegExp(`^retrace: run "gk" is being written by another process \\(pid ${pid} `),
      },
      {
        name: 'rm of a run whose branch cannot be read',
        setup: async (s) => breakRun(s, 'kid'),
        args: () => ['rm', 'root'],
        error: () => /^retrace: run root has branches \(kid\); pass --recursive/,
      },
      {
        name: 'rm --recursive with a run of unknown parent (an unreadable run of an older retrace)',
        setup: async (s) => {
          await breakRun(s, 'other');
          await fsp.rm(path.join(s, 'runs', 'other', 'parent.json'));
        },
        args: () => ['rm', 'root', '--recursive'],
        error: () => /^retrace: run root may have branches: the log of run other cannot be read \(.*\) and its parent is unknown; fix it .* or remove it first \(`retrace rm other`\)$/,
      },
      {
        name: 'export to a folder holding an export, without --force',
        setup: async (s, out) => {
          const r = await cli(['export', 'root', '--checkpoint', '1', '--out', out, '--store', s]);
          expect(r.code, r.stderr).toBe(0);
        },
        args: (out) => ['export', 'root', '--checkpoint', '2', '--out', out],
        error: () => /is not empty \(it holds model\.json, weights\.bin\); pass --force to replace it, or choose another --out$/,
      },
      {
        name: 'export --force to a folder that is not a model folder',
        setup: async (_s, out) => {
          await fsp.mkdir(path.join(out, 'notes'), { recursive: true });
          await fsp.writeFile(path.join(out, 'model.json'), '{}');
          await fsp.writeFile(path.join(out, 'notes', 'mine.txt'), 'keep me');
        },
        args: (out) => ['export', 'root', '--out', out, '--force'],
        error: () => /is not a model folder \(a model\.json and files only\), so --force does not replace it; choose another --out$/,
      },
      {
        name: 'export --force to a file',
        setup: async (_s, out) => fsp.writeFile(out, 'not a folder'),
        args: (out) => ['export', 'root', '--out', out, '--force'],
        error: () => /: it is a file, not a folder; choose another --out$/,
      },
      {
        name: 'export --force to a symbolic link to an export',
        setup: async (s, out) => {
          const real = `${out}-real`;
          expect((await cli(['export', 'root', '--out', real, '--store', s])).code).toBe(0);
          await fsp.symlink(real, out);
        },
        args: (out) => ['export', 'root', '--out', out, '--force'],
        error: () => /: it is a symbolic link; give the folder it points to as --out$/,
      },
      {
        name: 'export of an unknown checkpoint',
        setup: async () => {},
        args: (out) => ['export', 'root', '--checkpoint', '99', '--out', out],
        error: () => /^retrace: run root has no checkpoint 99/,
      },
      {
        name: 'export of a run being written',
        setup: async () => {},
        args: (out) => ['export', 'root', '--out', out],
        error: ([pid]) => new RegExp(`^retrace: run "root" is being written by another process \\(pid ${pid} `),
      },
    ];
    const held: Record<string, string> = {
      'rm --recursive of a run being written (issue 8: it used to delete the branches first)': 'root',
      'rm --recursive with a descendant being written': 'gk',
      'export of a run being written': 'root',
    };
    for (const c of cases) {
      const store = await copyOf(base);
      const out = path.join(await tempDir(), 'model');
      await c.setup(store, out);
      const pids = held[c.name] ? [await hold(store, held[c.name]!)] : [];
      const before = await filesOf([store, path.dirname(out)]);
      const r = await cli([...c.args(out), '--store', store]);
      expectOneLine(r, c.code ?? 1, c.error(pids));
      expectSameFiles(await filesOf([store, path.dirname(out)]), before, c.name);
    }
  }, 180_000);
});

describe('rm --recursive while the run trains (issue #8, item 8, as reported)', () => {
  it('exits 1 naming the trainer and removes nothing: the branch is still there, the trainer finishes cleanly', async () => {
    const store = await tempDir();
    const trainer = startCli(['train', '--dataset', 'iris', '--batch-size', '8', '--stop-point', '400', '--checkpoints', '40', '--run-id', 'P', '--store', store]);
    try {
      await trainer.waitFor(/checkpoint 1 \(epoch\)/);
      const b = await cli(['branch', 'P@ckpt:1', ...TRAIN, '--stop-point', '1', '--run-id', 'K', '--store', store]);
      expect(b.code, b.stderr).toBe(0);
      const kid = await cli(['log', 'K', '--store', store, '--json']);
      const r = await cli(['rm', 'P', '--recursive', '--store', store]);
      expectOneLine(r, 1, new RegExp(`^retrace: run "P" is being written by another process \\(pid ${trainer.child.pid} `));
      expect((await fsp.readdir(path.join(store, 'runs'))).sort()).toEqual(['K', 'P']);
      expect((await cli(['log', 'K', '--store', store, '--json'])).stdout).toBe(kid.stdout);
    } finally {
      trainer.child.kill('SIGINT');
    }
    const done = await trainer.done;
    expect(done.code, done.stderr).toBe(0);
    const after = await cli(['rm', 'P', '--recursive', '--store', store, '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(json(after)).toEqual({ removed: ['K', 'P'] });
  }, 120_000);
});

describe('a stale owner.json', () => {
  it('naming a live process that holds no lock (a dead writer\'s pid reused) blocks neither export nor rm', async () => {
    const store = await copyOf(base);
    const sleeper = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    holders.push(sleeper);
    for (const run of ['root', 'gk']) {
      const owner = { pid: sleeper.pid, hostname: 'here', command: 'retrace train (killed long ago)', startedAt: '2026-01-01T00:00:00.000Z' };
      await fsp.writeFile(path.join(store, 'runs', run, 'owner.json'), JSON.stringify(owner));
    }
    const out = path.join(await tempDir(), 'model');
    const e = await cli(['export', 'root', '--out', out, '--store', store]);
    expect(e.code, e.stderr).toBe(0);
    const r = await cli(['rm', 'root', '--recursive', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toEqual({ removed: ['gk', 'kid', 'root'] });
  }, 60_000);
});

describe('rm: an unreadable child is still a child', () => {
  it('refuses the parent, removes the unreadable child itself, then the parent', async () => {
    const store = await copyOf(base);
    await breakRun(store, 'gk');
    expectOneLine(await cli(['rm', 'kid', '--store', store]), 1, /^retrace: run kid has branches \(gk\)/);
    // --recursive takes the unreadable branch along (parent.json names its parent).
    const r = await cli(['rm', 'root', '--recursive', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toEqual({ removed: ['gk', 'kid', 'root'] });
    expect((await fsp.readdir(path.join(store, 'runs'))).sort()).toEqual(['other']);
    expect(await fsp.readdir(path.join(store, 'tmp'))).toEqual([]);
  }, 60_000);

  it('a run of unknown parent blocks rm of every readable run until it is removed', async () => {
    const store = await copyOf(base);
    await breakRun(store, 'kid');
    await fsp.rm(path.join(store, 'runs', 'kid', 'parent.json'));
    for (const run of ['root', 'other', 'gk']) {
      expectOneLine(await cli(['rm', run, '--store', store]), 1, new RegExp(`^retrace: run ${run} may have branches: the log of run kid cannot be read`));
    }
    // The unreadable run itself can go (gk names kid as parent in its log: --recursive).
    expectOneLine(await cli(['rm', 'kid', '--store', store]), 1, /^retrace: run kid has branches \(gk\)/);
    const r = await cli(['rm', 'kid', '--recursive', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toEqual({ removed: ['gk', 'kid'] });
    const r2 = await cli(['rm', 'other', '--store', store, '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect((await fsp.readdir(path.join(store, 'runs'))).sort()).toEqual(['root']);
  }, 60_000);

  it('every new run records its parent in parent.json before its first event', async () => {
    const parents: Record<string, string | null> = {};
    for (const id of ['root', 'kid', 'gk', 'other']) {
      parents[id] = (JSON.parse(await fsp.readFile(path.join(base, 'runs', id, 'parent.json'), 'utf8')) as { parent: string | null }).parent;
    }
    expect(parents).toEqual({ root: null, kid: 'root', gk: 'kid', other: null });
    const r = await cli(['fsck', '--store', base, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.stringify(json(r))).not.toMatch(/parent\.json/);
  }, 60_000);
});

describe('export --force', () => {
  it('replaces an export as a whole and leaves nothing beside it', async () => {
    const store = await copyOf(base);
    const dir = await tempDir();
    const out = path.join(dir, 'model');
    const first = await cli(['export', 'root', '--checkpoint', '1', '--out', out, '--store', store, '--json']);
    expect(first.code, first.stderr).toBe(0);
    await fsp.writeFile(path.join(out, 'stale.bin'), 'from an earlier export');
    const second = await cli(['export', 'root', '--checkpoint', '2', '--out', out, '--force', '--store', store, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect((await fsp.readdir(out)).sort()).toEqual(['model.json', 'weights.bin']);
    const meta = JSON.parse(await fsp.readFile(path.join(out, 'model.json'), 'utf8')) as { userDefinedMetadata: { retrace: { checkpoint: number } } };
    expect(meta.userDefinedMetadata.retrace.checkpoint).toBe(2);
    expect(await fsp.readdir(dir)).toEqual(['model']);
    // An empty folder is no export to protect.
    const empty = path.join(dir, 'empty');
    await fsp.mkdir(empty);
    const third = await cli(['export', 'root', '--out', empty, '--store', store]);
    expect(third.code, third.stderr).toBe(0);
    // Missing parents are made one level at a time; where they cannot be, one line (Node's own
    // recursive mkdir never returned under /proc).
    const deep = path.join(dir, 'a', 'b', 'c');
    expect((await cli(['export', 'root', '--out', deep, '--store', store])).code).toBe(0);
    for (const bad of ['/proc/nope/x', '/proc/self/x']) {
      const r = await cli(['export', 'root', '--out', bad, '--store', store], { timeoutMs: 30_000 });
      expect(r.signal, bad).toBeNull();
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim()).toBe(`retrace: cannot export to ${bad}: its folder cannot be written (ENOENT); choose another --out`);
    }
  }, 90_000);
});

describe('an I/O error inside rm or export is undone', () => {
  it('rm: the run folders moved so far go back, every run reads as before', async () => {
    // rm root --recursive moves gk, kid, root; "-after" fails once the rename is done.
    for (const point of ['rm-plan-before:1', 'rm-move-before:1', 'rm-move-after:1', 'rm-move-before:3', 'rm-move-after:3']) {
      const store = await copyOf(base);
      const logs = async () => Promise.all(['root', 'kid', 'gk'].map(async (run) => (await cli(['log', run, '--store', store, '--json'])).stdout));
      const before = await logs();
      const r = await cli(['rm', 'root', '--recursive', '--store', store], { env: hookEnv({ fail: `${point}:EIO` }) });
      expectOneLine(r, 1, /^retrace: write error \(EIO: i\/o error \(injected at /);
      expect((await fsp.readdir(path.join(store, 'runs'))).sort(), point).toEqual(['gk', 'kid', 'other', 'root']);
      expect(await fsp.readdir(path.join(store, 'tmp')), point).toEqual([]);
      expect(await logs(), point).toEqual(before);
    }
  }, 120_000);

  it('export: --out holds what it held before, byte for byte, and nothing is left beside it', async () => {
    for (const [point, force] of [
      ['export-retire-before:1', true],
      ['export-retire-after:1', true],
      ['export-install-before:1', true],
      ['export-install-after:1', true],
      ['export-install-before:1', false],
      ['export-install-after:1', false],
    ] as const) {
      const store = await copyOf(base);
      const dir = await tempDir();
      const out = path.join(dir, 'model');
      if (force) expect((await cli(['export', 'root', '--checkpoint', '1', '--out', out, '--store', store])).code).toBe(0);
      else await fsp.mkdir(out);
      const before = await filesOf([dir]);
      const r = await cli(['export', 'root', '--checkpoint', '2', '--out', out, ...(force ? ['--force'] : []), '--store', store], {
        env: hookEnv({ fail: `${point}:EIO` }),
      });
      expectOneLine(r, 1, /^retrace: write error \(EIO: i\/o error \(injected at /);
      expectSameFiles(await filesOf([dir]), before, point);
      expect(await fsp.readdir(dir), point).toEqual(['model']);
    }
  }, 120_000);
});
