// "Resumable" is decided once (machines/queries.ts canResume): the dashboard resumes a crashed run
// (its log ends mid-training and no process holds it) exactly as `retrace resume` does, offers the
// resume button by the flag the server computes with that function, and refuses a finished run.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import { showState } from '../../src/run/inspect.js';
import { train } from '../../src/run/train.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, ROOT, getJson, postJson, removeTempDirs, tempDir, useToken, waitForJob } from './helpers.js';

let server: UiServer;
let base: string;
let store: string;
let straight: { weightsHash: string | null; step: number };

beforeAll(async () => {
  store = path.join(await tempDir(), 'store');
  straight = await train({ store, config: { ...IRIS, runId: 'done' }, command: 'test' });
  // 120 examples × 10 passes / batch 16 = 75 steps; killed after step 30, past checkpoint 1 (step 18).
  const args = ['--dataset', 'iris', '--model', 'mlp', '--backend', 'wasm', '--batch-size', '16', '--stop-point', '10', '--checkpoints', '4', '--seed', '42'];
  const killed = await runCli(['train', ...args, '--run-id', 'crashed', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 30 } });
  expect(killed.signal).toBe('SIGKILL');
  server = await startUiServer({ store, port: 0, pollMs: 200, exportDir: path.join(path.dirname(store), 'exports') });
  base = server.url;
  useToken(server.token);
}, 120_000);

afterAll(async () => {
  killAllChildren();
  await server?.close();
  await removeTempDirs();
});

describe('resuming from the dashboard', () => {
  it('marks a crashed run resumable and a finished one not, as `retrace state` does', async () => {
    const rows = (await getJson(base, '/api/runs')).body.runs as Array<{ runId: string; state: string; liveness: string | null; resumable: boolean; exportable: boolean }>;
    const crashed = rows.find((r) => r.runId === 'crashed')!;
    const done = rows.find((r) => r.runId === 'done')!;
    expect(crashed).toMatchObject({ state: 'training', liveness: 'crashed', resumable: true, exportable: true });
    expect(done).toMatchObject({ state: 'stopped', resumable: false, exportable: true });
    expect((await showState('crashed', { store })).resumable).toBe(true);
    expect((await showState('done', { store })).resumable).toBe(false);
    expect((await getJson(base, '/api/runs/crashed')).body.run.resumable).toBe(true);
  });

  it('refuses a finished run with the reason, and resumes the crashed one to the weights of the uninterrupted run', async () => {
    const refused = await postJson(base, '/api/runs/done/resume', {});
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('NOT_RESUMABLE');
    expect(refused.body.error).toBe('run done cannot be resumed: it is stopped (budget): only an interrupted or crashed run resumes');
    const res = await postJson(base, '/api/runs/crashed/resume', {});
    expect(res.status, res.body.error).toBe(202);
    const job = await waitForJob(base, res.body.job.id, 120_000);
    expect(job.status, job.error).toBe('done');
    expect(job.result).toMatchObject({ state: 'stopped', stopReason: 'budget', step: straight.step, weightsHash: straight.weightsHash });
    const row = (await getJson(base, '/api/runs/crashed')).body.run;
    expect(row).toMatchObject({ state: 'stopped', resumable: false, liveness: null });
  });
});
