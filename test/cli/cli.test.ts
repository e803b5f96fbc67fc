// The command line as other tools use it: real processes, the --json contracts, exit codes,
// determinism across processes, and a run held by another process.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../run/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'retrace.js');

function retrace(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(r: { stdout: string; stderr: string; code: number | null }): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n');
  expect(lines, `stdout must be exactly one JSON line; stderr: ${r.stderr}`).toHaveLength(1);
  return JSON.parse(lines[0]!);
}

const IRIS = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '6', '--checkpoints', '3', '--backend', 'wasm'];

describe('retrace CLI', () => {
  it('gives the same weightsHash in two processes for the same config and seed (MLP with unseeded dropout)', async () => {
    const store = await tempDir();
    const args = ['train', '--dataset', 'mnist', '--model', 'mlp', '--batch-size', '64', '--stop-point', '0.5', '--checkpoints', '2', '--seed', '11', '--store', store, '--json'];
    // Two processes at once: nothing shared but the store folder.
    const run = (id: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, ...args, '--run-id', id], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`exit ${code}: ${err}`))));
      });
    const [a, b] = await Promise.all([run('a'), run('b')]);
    expect(a.weightsHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.weightsHash).toBe(a.weightsHash);
    // The step count closest to 0.5 passes over the training split at batch 64 (rules 2: no ceil per checkpoint).
    expect(a.step).toBe(62);
    const other = json(retrace([...args, '--run-id', 'c', '--seed', '12']));
    expect(other.weightsHash).not.toBe(a.weightsHash);
  });

  it('keeps the --json contracts of train, runs, state, log, replay, branch and export', async () => {
    const store = await tempDir();
    const s = ['--store', store, '--json'];
    const trained = json(retrace(['train', ...IRIS, '--run-id', 'base', ...s]));
    expect(Object.keys(trained).sort()).toEqual(['bestCheckpoint', 'bestWeightsHash', 'examplesSeen', 'runId', 'state', 'step', 'stopReason', 'weightsHash']);
    expect(trained).toMatchObject({ runId: 'base', state: 'stopped', stopReason: 'budget', step: 90, examplesSeen: 720 });

    const branched = json(retrace(['branch', 'base@ckpt:1', '--lr', '0.0005', '--stop-point', '2', '--checkpoints', '1', '--run-id', 'ft', ...s]));
    expect(branched).toMatchObject({ runId: 'ft', state: 'stopped' });

    const runs = json(retrace(['runs', ...s])) as unknown as Array<Record<string, unknown>>;
    expect(runs).toEqual([
      { runId: 'base', parent: null, state: 'stopped', stopReason: 'budget', step: 90, error: null, liveness: null },
      { runId: 'ft', parent: { runId: 'base', point: 'ckpt:1' }, state: 'stopped', stopReason: 'budget', step: 30, error: null, liveness: null },
    ]);

    const state = json(retrace(['state', 'base', '--at', 'step:45', ...s]));
    expect(state).toMatchObject({ state: 'training', step: 45 });
    const idle = json(retrace(['state', 'base', '--at', '0', ...s]));
    expect(idle).toMatchObject({ state: 'idle', step: 0 });

    const log = retrace(['log', 'base', '--from', '3', '--to', '7', ...s]);
    const events = log.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7]);

    const replayed = json(retrace(['replay', 'base', '--verify', ...s]));
    expect(replayed).toMatchObject({ identical: true, firstDivergence: null, weightsHash: trained.weightsHash });

    const out = path.join(store, 'exported');
    const exported = json(retrace(['export', 'base', '--checkpoint', 'best', '--out', out, ...s]));
    expect(Object.keys(exported).sort()).toEqual(['checkpoint', 'checkpointKind', 'checkpointName', 'out', 'runId', 'step', 'weightsHash']);
    expect(json(retrace(['state', 'base', ...s]))).toMatchObject({ state: 'stopped', stopReason: 'budget', context: { exported: { out } } });

    const resumed = json(retrace(['resume', 'base', ...s]));
    expect(resumed).toMatchObject({ runId: 'base', state: 'stopped', step: 90, weightsHash: trained.weightsHash });
  });

  it('exits 2 with one line for bad usage and 1 with one line for a failed operation', async () => {
    const store = await tempDir();
    const bad = retrace(['train', '--dataset', 'iris', '--batch-size', 'many', '--store', store]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/batchSize/);

    const neg = retrace(['train', '--dataset', 'iris', '--stop-point', '-1', '--store', store]);
    expect(neg.code).toBe(2);
    expect(neg.stderr).toMatch(/stopPoint/);

    const unknownFlag = retrace(['train', '--batchsize', '3', '--store', store]);
    expect(unknownFlag.code).toBe(2);

    const unknown = retrace(['state', 'ghost', '--store', store]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toMatch(/^retrace: unknown run "ghost"/);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);

    const badCsv = retrace(['train', '--dataset', `csv:${path.join(store, 'missing.csv')}`, '--store', store]);
    expect(badCsv.code).toBe(1);
    expect(badCsv.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('says which process holds a run that is training, and lets readers look at it meanwhile', async () => {
    const store = await tempDir();
    const child = spawn(process.execPath, [BIN, 'train', '--dataset', 'mnist', '--stop-point', '20', '--checkpoints', '20', '--run-id', 'busy', '--store', store], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      // Wait until the run has logged a few steps.
      for (let i = 0; i < 200; i += 1) {
        const s = retrace(['state', 'busy', '--store', store, '--json']);
        if (s.code === 0 && (JSON.parse(s.stdout).step as number) > 5) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const state = json(retrace(['state', 'busy', '--store', store, '--json']));
      expect(['training', 'checkpointing']).toContain(state.state);

      const again = retrace(['resume', 'busy', '--store', store]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(new RegExp(`busy.*another process.*pid ${child.pid}`));
      const dup = retrace(['train', '--dataset', 'iris', '--run-id', 'busy', '--store', store]);
      expect(dup.code).toBe(1);
      expect(dup.stderr).toMatch(/already exists/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
    // SIGTERM was graceful: an interrupt checkpoint, resumable.
    expect(json(retrace(['state', 'busy', '--store', store, '--json']))).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
  });
});
