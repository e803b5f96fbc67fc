// Kills inside `rm` and `export` (the kill points of src/chaos/kill-hook.ts: rm-*, export-*): a
// real SIGKILL at each point leaves the old state or the new one, never a mix, and the next command
// finishes or cleans up the partial work. Child processes of the built bin/retrace.js (needs
// `npm run build`).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import { EXPORT_KILL_POINTS, RM_KILL_POINTS, type KillPoint } from '../../src/chaos/kill-points.js';
import { cleanupTempDirs, cli, json, ROOT, snapshotFiles, tempDir } from './helpers.js';

const TRAIN = ['--dataset', 'iris', '--backend', 'wasm', '--batch-size', '8', '--checkpoints', '2', '--json'];
let base = '';
/** Complete exports of root's checkpoints 1 (the old one) and 2 (the new one), file → bytes. */
let oldExport = new Map<string, Buffer>();
let newExport = new Map<string, Buffer>();

beforeAll(async () => {
  base = await tempDir();
  for (const args of [
    ['train', ...TRAIN, '--stop-point', '2', '--run-id', 'root'],
    ['branch', 'root@ckpt:1', ...TRAIN, '--stop-point', '1', '--run-id', 'kid'],
    ['branch', 'kid@last', ...TRAIN, '--stop-point', '1', '--run-id', 'gk'],
    ['train', ...TRAIN, '--stop-point', '1', '--run-id', 'other'],
  ]) {
    const r = await cli([...args, '--store', base]);
    expect(r.code, r.stderr).toBe(0);
  }
  for (const [ckpt, set] of [['1', (m: Map<string, Buffer>) => (oldExport = m)], ['2', (m: Map<string, Buffer>) => (newExport = m)]] as const) {
    const store = await copyOf(base);
    const out = path.join(await tempDir(), 'model');
    const r = await cli(['export', 'root', '--checkpoint', ckpt, '--out', out, '--store', store]);
    expect(r.code, r.stderr).toBe(0);
    set(await snapshotFiles(out));
  }
  expect(sameFiles(oldExport, newExport)).toBe(false);
}, 120_000);

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

async function copyOf(store: string): Promise<string> {
  const d = await tempDir();
  await fsp.cp(store, d, { recursive: true });
  return d;
}

function sameFiles(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  return a.size === b.size && [...a].every(([p, bytes]) => b.get(p)?.equals(bytes) === true);
}

/** What a reader of `out` sees: the old export, the new one, nothing, or a mix. */
async function exportAt(out: string): Promise<'old' | 'new' | 'missing' | 'mixed'> {
  let files: Map<string, Buffer>;
  try {
    files = await snapshotFiles(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  return sameFiles(files, oldExport) ? 'old' : sameFiles(files, newExport) ? 'new' : 'mixed';
}

/** Each run's events through `retrace log --json` (the CLI opens the store, finishing any half-done rm). */
async function logs(store: string, runs: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const run of runs) {
    const r = await cli(['log', run, '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    out[run] = r.stdout;
  }
  return out;
}

async function runIds(store: string): Promise<string[]> {
  const r = await cli(['runs', '--store', store, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return json<Array<{ runId: string }>>(r)
    .map((x) => x.runId)
    .sort();
}

describe('a kill inside rm', () => {
  // rm root --recursive moves gk, kid, root (children first): the 1st, 2nd and 3rd run folders.
  const plans: Array<{ point: KillPoint; n: number; moved: number; after: 'old' | 'new' }> = [
    { point: 'rm-plan-before', n: 1, moved: 0, after: 'old' },
    { point: 'rm-move-before', n: 1, moved: 0, after: 'new' },
    { point: 'rm-move-after', n: 1, moved: 1, after: 'new' },
    { point: 'rm-move-before', n: 3, moved: 2, after: 'new' },
    { point: 'rm-move-after', n: 3, moved: 3, after: 'new' },
  ];

  it('covers every rm kill point', () => {
    expect(new Set(plans.map((p) => p.point))).toEqual(new Set(RM_KILL_POINTS));
  });

  it.each(plans)('$point:$n leaves the old runs or none, and the next command finishes the removal', async ({ point, n, moved, after }) => {
    const store = await copyOf(base);
    const before = await logs(store, ['root', 'kid', 'gk', 'other']);
    const r = await runCli(['rm', 'root', '--recursive', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point, n } });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(r.killedBy).toBe('hook');
    // On disk right after the kill: the plan and the folders moved so far.
    const left = (await fsp.readdir(path.join(store, 'runs'))).sort();
    expect(left.length).toBe(4 - moved);
    const trash = (await fsp.readdir(path.join(store, 'tmp'))).filter((t) => t.startsWith('remove-'));
    expect(trash.length).toBe(1);
    const planned = await fsp.readFile(path.join(store, 'tmp', trash[0]!, 'removal.json'), 'utf8').catch(() => null);
    expect(planned === null).toBe(after === 'old');

    // The next command (any store open) sees the old state or the new one.
    if (after === 'old') {
      expect(await runIds(store)).toEqual(['gk', 'kid', 'other', 'root']);
      expect(await logs(store, ['root', 'kid', 'gk', 'other'])).toEqual(before);
    } else {
      expect(await runIds(store)).toEqual(['other']);
      expect(await logs(store, ['other'])).toEqual({ other: before.other });
    }
    expect(await fsp.readdir(path.join(store, 'tmp'))).toEqual([]);
    expect((await fsp.readdir(path.join(store, 'runs'))).sort()).toEqual(after === 'old' ? ['gk', 'kid', 'other', 'root'] : ['other']);
    // And rm works again afterwards.
    const again = await cli(['rm', after === 'old' ? 'root' : 'other', '--recursive', '--store', store, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const fsck = await cli(['fsck', '--store', store, '--json']);
    expect(fsck.code, fsck.stderr).toBe(0);
  }, 60_000);
});

describe('a kill inside export', () => {
  const plans: Array<{ point: KillPoint; force: boolean; seen: 'old' | 'new' | 'missing'; next: 'old' | 'new' | 'missing' }> = [
    // --force over the old export: aside, then the new one in.
    { point: 'export-retire-before', force: true, seen: 'old', next: 'old' },
    { point: 'export-retire-after', force: true, seen: 'missing', next: 'new' },
    { point: 'export-install-before', force: true, seen: 'missing', next: 'new' },
    { point: 'export-install-after', force: true, seen: 'new', next: 'new' },
    // A first export into a fresh folder.
    { point: 'export-install-before', force: false, seen: 'missing', next: 'missing' },
    { point: 'export-install-after', force: false, seen: 'new', next: 'new' },
  ];

  it('covers every export kill point', () => {
    expect(new Set(plans.map((p) => p.point))).toEqual(new Set(EXPORT_KILL_POINTS));
  });

  it.each(plans)('$point (force: $force) never leaves a mixed export, and the next export finishes or undoes it', async ({ point, force, seen, next }) => {
    const store = await copyOf(base);
    const dir = await tempDir();
    const out = path.join(dir, 'model');
    if (force) {
      const first = await cli(['export', 'root', '--checkpoint', '1', '--out', out, '--store', store]);
      expect(first.code, first.stderr).toBe(0);
      expect(await exportAt(out)).toBe('old');
    }
    const r = await runCli(['export', 'root', '--checkpoint', '2', '--out', out, ...(force ? ['--force'] : []), '--store', store, '--json'], {
      cwd: ROOT,
      kill: { kind: 'hook', point, n: 1 },
    });
    expect(r.signal, r.stderr).toBe('SIGKILL');
    expect(r.killedBy).toBe('hook');
    expect(await exportAt(out)).toBe(seen);

    // The next export to the same folder (here one that refuses: no --force over an export, or
    // an unknown checkpoint) first finishes or undoes the killed one, then refuses.
    const again = await cli(['export', 'root', '--checkpoint', next === 'missing' ? '99' : '2', '--out', out, '--store', store]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(next === 'missing' ? /no checkpoint 99/ : /is not empty .*pass --force/);
    expect(await exportAt(out)).toBe(next);
    expect(await fsp.readdir(dir)).toEqual(next === 'missing' ? [] : ['model']);

    // And an export completes afterwards.
    const done = await cli(['export', 'root', '--checkpoint', '2', '--out', out, '--force', '--store', store, '--json']);
    expect(done.code, done.stderr).toBe(0);
    expect(await exportAt(out)).toBe('new');
    expect(await fsp.readdir(dir)).toEqual(['model']);
  }, 60_000);
});
