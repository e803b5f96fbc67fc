// Issue #8, item 1: a run created from another run's state (a branch, an init-from model) must have
// that state durable before it can be resumed. Observed: a branch SIGKILLed after its run.created
// and before its checkpoint 0 was resumed from the parent's step-0 initialisation, and fsck and
// replay --verify both said clean. Real processes, real SIGKILL at the named kill point.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import { cleanupTempDirs, cli, json, ROOT, tempDir } from './helpers.js';
import { tamper } from '../run/helpers.js';

const SMALL = ['--dataset', 'iris', '--batch-size', '16', '--stop-point', '8', '--checkpoints', '4', '--seed', '11'];
let store: string;

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

beforeAll(async () => {
  store = await tempDir();
  const r = await cli(['train', ...SMALL, '--run-id', 'p', '--store', store, '--json']);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

/** Runs `args` killed (SIGKILL) right after its first synced batch: run.created is durable, checkpoint 0 is not. */
async function killedAfterCreation(args: string[]): Promise<void> {
  const k = await runCli([...args, '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'sync-batch-after', n: 1 } });
  expect(k.signal, k.stderr).toBe('SIGKILL');
}

async function eventTypes(run: string): Promise<string[]> {
  const r = await cli(['log', run, '--store', store, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
}

describe('a run killed between run.created and checkpoint 0', () => {
  it('a branch resumes from its branch point: the same weights as an uninterrupted branch; fsck and replay clean', async () => {
    await killedAfterCreation(['branch', 'p@ckpt:2', '--run-id', 'b-killed', '--lr', '0.003']);
    expect(await eventTypes('b-killed')).not.toContain('checkpoint.committed');
    const resumed = await cli(['resume', 'b-killed', '--store', store, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const straight = await cli(['branch', 'p@ckpt:2', '--run-id', 'b-straight', '--lr', '0.003', '--store', store, '--json']);
    expect(straight.code, straight.stderr).toBe(0);
    expect(json<{ weightsHash: string }>(resumed).weightsHash).toBe(json<{ weightsHash: string }>(straight).weightsHash);
    const fsck = await cli(['fsck', '--store', store, '--json']);
    expect(json<{ ok: boolean }>(fsck).ok, fsck.stdout).toBe(true);
    const replay = await cli(['replay', 'b-killed', '--verify', '--store', store, '--json']);
    expect(json<{ identical: boolean }>(replay).identical, replay.stdout).toBe(true);
  }, 120_000);

  it('a branch from a step between checkpoints and an init-from run do too', async () => {
    await killedAfterCreation(['branch', 'p@step:21', '--run-id', 's-killed', '--lr', '0.003']);
    const a = await cli(['resume', 's-killed', '--store', store, '--json']);
    const b = await cli(['branch', 'p@step:21', '--run-id', 's-straight', '--lr', '0.003', '--store', store, '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(json<{ weightsHash: string }>(a).weightsHash).toBe(json<{ weightsHash: string }>(b).weightsHash);

    const model = path.join(store, 'export-p');
    const e = await cli(['export', 'p', '--checkpoint', '2', '--out', model, '--store', store, '--json']);
    expect(e.code, e.stderr).toBe(0);
    await killedAfterCreation(['train', ...SMALL, '--init-from', model, '--run-id', 'i-killed']);
    const c = await cli(['resume', 'i-killed', '--store', store, '--json']);
    const d = await cli(['train', ...SMALL, '--init-from', model, '--run-id', 'i-straight', '--store', store, '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(json<{ weightsHash: string }>(c).weightsHash).toBe(json<{ weightsHash: string }>(d).weightsHash);
    // Resume does not need the init-from model's weights any more: they are in the store.
    const created = (await cli(['log', 'i-killed', '--store', store, '--json', '--from', '0', '--to', '0'])).stdout;
    expect((JSON.parse(created) as { data: { start: { weightsHash: string } } }).data.start.weightsHash).toMatch(/^[0-9a-f]{64}$/);
  }, 180_000);
});

describe('fsck and replay --verify check a run\'s start', () => {
  it('report a checkpoint 0 that is not the start run.created names, and a branch that does not start at its point', async () => {
    const r = await cli(['branch', 'p@ckpt:3', '--run-id', 'forged', '--lr', '0.003', '--stop-point', '1', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ok = await cli(['fsck', '--store', store, '--json']);
    expect(json<{ ok: boolean }>(ok).ok, ok.stdout).toBe(true);
    // What the old bug left: checkpoint 0 holding the parent's step-0 initialisation.
    const parentLog = (await cli(['log', 'p', '--store', store, '--json', '--from', '0', '--to', '10'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> });
    const parent0 = parentLog.find((x) => x.type === 'checkpoint.committed')!.data;
    const branchLog = (await cli(['log', 'forged', '--store', store, '--json', '--from', '0', '--to', '10'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; type: string });
    const ckpt0 = branchLog.find((x) => x.type === 'checkpoint.committed')!.seq;
    await tamper(store, 'forged', ckpt0, (rec) => ({ ...rec, data: { ...(rec.data as object), weights: parent0.weights, optimizer: parent0.optimizer, weightsHash: parent0.weightsHash } }));
    const bad = await cli(['fsck', '--store', store, '--json']);
    const report = json<{ ok: boolean; problems: Array<{ runId: string; kind: string; message: string }> }>(bad);
    expect(report.ok).toBe(false);
    expect(report.problems.filter((p) => p.kind === 'start').map((p) => p.runId)).toEqual(['forged']);
    expect(report.problems.find((p) => p.kind === 'start')!.message).toMatch(/checkpoint 0 has weights .* not the start state run\.created names/);
    const replay = await cli(['replay', 'forged', '--verify', '--store', store, '--json']);
    expect(replay.code).toBe(1);
    expect(json<{ identical: boolean; message: string }>(replay).message).toMatch(/not the start state|not from p@ckpt:3/);

    // A log written before run.created recorded the start: the branch point is checked against the parent.
    await tamper(store, 'forged', 0, (rec) => {
      const { start: _start, ...data } = rec.data as Record<string, unknown>;
      return { ...rec, data };
    });
    const legacy = json<{ problems: Array<{ runId: string; kind: string; message: string }> }>(await cli(['fsck', '--store', store, '--json']));
    expect(legacy.problems.filter((p) => p.kind === 'start')).toEqual([expect.objectContaining({ runId: 'forged', message: expect.stringMatching(/not from p@ckpt:3 \(its epoch checkpoint 3/) })]);
  }, 120_000);

  it('resume refuses a branch from before start states whose checkpoint 0 never committed, instead of initialising it afresh', async () => {
    await killedAfterCreation(['branch', 'p@ckpt:1', '--run-id', 'old-style']);
    await tamper(store, 'old-style', 0, (rec) => {
      const { start: _start, ...data } = rec.data as Record<string, unknown>;
      return { ...rec, data };
    });
    const before = (await cli(['log', 'old-style', '--store', store, '--json'])).stdout;
    const r = await cli(['resume', 'old-style', '--store', store]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^retrace: run old-style is a branch of p@ckpt:1 that stopped before its starting state was committed; remove it .*and branch again$/);
    expect((await cli(['log', 'old-style', '--store', store, '--json'])).stdout).toBe(before);
  }, 120_000);
});
