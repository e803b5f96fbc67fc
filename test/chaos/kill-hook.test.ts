// The kill points of src/chaos/kill-hook.ts fire where they say: a child trained with each point
// dies by SIGKILL, and what it leaves matches the point (a refactor of the store's I/O must not
// silently turn a kill point into a no-op). Needs `npm run build`.
import { afterAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli, snapshotRun } from '../../src/chaos/harness.js';
import { TRAIN_KILL_POINTS, type TrainKillPoint } from '../../src/chaos/kill-points.js';
import { cleanupTempDirs, ROOT, tempDir } from './helpers.js';

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

const SMALL = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '4', '--checkpoints', '4'];

describe('kill points', () => {
  it('every point kills the process where it says', async () => {
    const n: Record<TrainKillPoint, number> = {
      'step-after': 5,
      'blob-before': 2,
      'blob-after': 2,
      'batch-before': 2,
      'batch-after': 2,
      'sync-batch-before': 2,
      'sync-batch-after': 2,
      'committed-before': 2,
      'committed-after': 2,
    };
    const results = [];
    for (let i = 0; i < TRAIN_KILL_POINTS.length; i += 3) {
      results.push(
        ...(await Promise.all(
          TRAIN_KILL_POINTS.slice(i, i + 3).map(async (point) => {
            const store = await tempDir();
            const r = await runCli(['train', ...SMALL, '--run-id', 'k', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point, n: n[point]! } });
            return { point, r, snap: await snapshotRun(store, 'k') };
          }),
        )),
      );
    }
    for (const { point, r, snap } of results) {
      expect(r.signal, `${point}: ${r.stderr.slice(-300)}`).toBe('SIGKILL');
      expect(r.killedBy, point).toBe('hook');
      expect(snap.error, point).toBeNull();
      expect(snap.state, point).not.toBe('stopped');
    }
    const at = Object.fromEntries(results.map(({ point, snap }) => [point, snap]));
    // run.created is the first synced batch; checkpoint 0 the second.
    expect(at['sync-batch-before']!.records.length).toBe(1);
    expect(at['sync-batch-after']!.records.some((x) => x.includes('"checkpoint.committed"'))).toBe(true);
    expect(at['sync-batch-after']!.committedSeq).toBe(0); // committed.json not advanced yet
    expect(at['committed-before']!.committedSeq).toBe(0);
    expect(at['committed-after']!.committedSeq).toBeGreaterThan(0);
    expect(at['step-after']!.step).toBeLessThan(5);
  }, 120_000);
});
