// gc's own kill points (src/chaos/kill-hook.ts): `retrace gc` SIGKILLed between its mark and its
// sweep, after condemning a blob, around an unlink. Whatever it leaves, fsck is clean and every blob
// a run names is there; the next gc puts back what was left aside and finishes the job. (The chaos
// harness also runs gc alongside trainers, killed at these points: kill-resume.test.ts.)
// Needs `npm run build`.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import type { KillPoint } from '../../src/chaos/kill-points.js';
import { cleanupTempDirs, cli, json, ROOT, tempDir } from './helpers.js';

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

const SMALL = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '2', '--checkpoints', '2'];

/** Blob files under blobs/<hh>/ (names only; condemned ones end in .gc-…). */
async function blobNames(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await fsp.readdir(path.join(store, 'blobs'))) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    out.push(...(await fsp.readdir(path.join(store, 'blobs', shard))));
  }
  return out.sort();
}

/** Writes `n` old orphan blobs (content hashed to its name, as fsck checks) and returns their hashes. */
async function orphans(store: string, n: number): Promise<string[]> {
  const out: string[] = [];
  const old = new Date(Date.now() - 3600_000);
  for (let i = 0; i < n; i += 1) {
    const bytes = randomBytes(100 + i);
    const h = createHash('sha256').update(bytes).digest('hex');
    const file = path.join(store, 'blobs', h.slice(0, 2), h);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, bytes);
    await fsp.utimes(file, old, old);
    out.push(h);
  }
  return out.sort();
}

describe('gc kill points', () => {
  it('a gc killed at any of its points leaves nothing a run names missing, and the next gc finishes', async () => {
    const base = await tempDir();
    const trained = await cli(['train', ...SMALL, '--run-id', 'r', '--store', base, '--json']);
    expect(trained.code, trained.stderr).toBe(0);
    const named = await blobNames(base);
    const plans: Array<[KillPoint, number]> = [
      ['gc-condemn-before', 1], // between the mark and the sweep
      ['gc-condemn-after', 2], // two blobs aside, before the second check
      ['gc-unlink-before', 1],
      ['gc-unlink-after', 2], // between unlinks
    ];
    await Promise.all(
      plans.map(async ([point, n]) => {
        const store = await tempDir();
        await fsp.cp(base, store, { recursive: true });
        const garbage = await orphans(store, 4);
        const r = await runCli(['gc', '--grace', '0', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point, n } });
        expect(r.signal, `${point}:${n}: ${r.stderr.slice(-300)}`).toBe('SIGKILL');
        expect(r.killedBy, point).toBe('hook');
        const left = await blobNames(store);
        const aside = left.filter((x) => x.includes('.gc-'));
        if (point === 'gc-condemn-before') expect(aside, point).toEqual([]);
        if (point === 'gc-condemn-after') expect(aside, point).toHaveLength(2);
        for (const h of named) expect(left, `${point}: a blob the run names`).toContain(h);
        const report = await fsck(store);
        expect(report.problems, point).toEqual([]);

        const again = await cli(['gc', '--grace', '0', '--store', store, '--json']);
        expect(again.code, again.stderr).toBe(0);
        const res = json<{ deleted: string[]; restored: string[] }>(again);
        expect(await blobNames(store), point).toEqual(named);
        // What the killed gc had not unlinked yet, this one deleted.
        expect([...res.deleted].sort(), point).toEqual(garbage.filter((h) => res.deleted.includes(h)));
        expect((await fsck(store)).problems, point).toEqual([]);
        return point;
      }),
    );
  }, 120_000);
});

describe('fsck and a missing blob', () => {
  it('reports every missing blob a committed event names, and goes on checking everything else', async () => {
    const store = await tempDir();
    for (const id of ['a', 'b']) {
      const r = await cli(['train', ...SMALL, '--run-id', id, '--store', store, '--seed', id === 'a' ? '1' : '2', '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
    const log = await cli(['log', 'a', '--store', store, '--json']);
    const ckpts = log.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string; data: { weights: Array<{ hash: string; pack?: { hash: string } }> } })
      .filter((r) => r.type === 'checkpoint.committed');
    // The blobs holding those tensors: their checkpoints' packs (iris's tensors are all small).
    const blobOf = (t: { hash: string; pack?: { hash: string } }) => t.pack?.hash ?? t.hash;
    const gone = [blobOf(ckpts[0]!.data.weights[0]!), blobOf(ckpts.at(-1)!.data.weights[1]!)];
    for (const h of gone) await fsp.rm(path.join(store, 'blobs', h.slice(0, 2), h));
    const r = await cli(['fsck', '--store', store, '--json']);
    expect(r.code).toBe(1);
    const report = json<{ ok: boolean; problems: Array<{ runId: string; kind: string; seq?: number; blob?: string; message: string }>; runs: Array<{ runId: string; events: number; blobsChecked: number }> }>(r);
    expect(report.ok).toBe(false);
    for (const h of gone) {
      expect(report.problems).toContainEqual(expect.objectContaining({ runId: 'a', kind: 'blob', blob: h, message: expect.stringContaining(`blob ${h} is missing from the store`) }));
    }
    expect(report.problems.every((p) => p.kind === 'blob' && p.runId === 'a')).toBe(true);
    // Both runs were checked to their ends, blobs and all.
    expect(report.runs.map((x) => x.runId)).toEqual(['a', 'b']);
    // A pack per checkpoint (initial + 2): a's third, and all of b's, verified.
    expect(report.runs.map((x) => x.blobsChecked)).toEqual([1, 3]);
  }, 120_000);
});
