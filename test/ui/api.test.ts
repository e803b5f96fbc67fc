// The dashboard's JSON API against a temp store holding a small real iris run: shapes, the same
// state as `retrace state --at`, branch/replay/export jobs, bad input → 4xx with a JSON message,
// the request guards, and live viewing of a run that ANOTHER process is training (holding its lock).
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLog, readRun, stateAt, resolveAt } from '../../src/run/inspect.js';
import { Store } from '../../src/log/store.js';
import { replay } from '../../src/run/replay.js';
import { train } from '../../src/run/train.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, exitOf, getJson, postJson, readEvents, removeTempDirs, tempDir, trainInChild, useToken, waitForJob } from './helpers.js';

let dir: string;
let server: UiServer;
let base: string;
let stepCount = 0;

beforeAll(async () => {
  dir = await tempDir();
  await train({ store: path.join(dir, 'store'), config: { ...IRIS, runId: 'iris-a' }, command: 'test' });
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200, exportDir: path.join(dir, 'exports') });
  base = server.url;
  useToken(server.token);
  for await (const r of readLog(server.store, 'iris-a')) if (r.type === 'step.finished') stepCount += 1;
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

describe('reading', () => {
  it('listens on 127.0.0.1 by default, on a free port', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(base).toBe(`http://127.0.0.1:${server.port}/`);
  });

  it('serves the page and uPlot from node_modules (nothing from the network)', async () => {
    const page = await fetch(base, { headers: { Authorization: `Bearer ${server.token}` } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/assets/uPlot.iife.min.js');
    expect(html).not.toMatch(/https?:\/\//);
    for (const asset of ['/assets/app.js', '/assets/chart.js', '/assets/app.css', '/assets/uPlot.iife.min.js', '/assets/uPlot.min.css']) {
      const res = await fetch(new URL(asset, base));
      expect(res.status, asset).toBe(200);
    }
  });

  it('GET /api/runs: every run with state, stop reason, steps, best metric, backend, created time', async () => {
    const { status, body } = await getJson(base, '/api/runs');
    expect(status).toBe(200);
    expect(body.jobs).toEqual([]);
    expect(body.runs).toHaveLength(1);
    const run = body.runs[0];
    expect(run).toMatchObject({
      runId: 'iris-a',
      parent: null,
      originStep: 0,
      state: 'stopped',
      stopReason: 'budget',
      step: stepCount,
      totalSteps: stepCount,
      monitor: 'valLoss',
      dataset: 'iris',
      model: 'mlp',
      writer: null,
      error: null,
    });
    expect(stepCount).toBe(75); // 120 training examples × 10 passes / batch 16
    expect(typeof run.bestMetric).toBe('number');
    expect(typeof run.bestCheckpoint).toBe('number');
    expect(['wasm', 'cpu', 'tensorflow']).toContain(run.backend);
    expect(Number.isNaN(Date.parse(run.createdAt))).toBe(false);
  });

  it('GET /api/runs/:id: series with one point per logged step, evaluations, checkpoints, transitions', async () => {
    const { status, body } = await getJson(base, '/api/runs/iris-a');
    expect(status).toBe(200);
    const v = body.view;
    expect(v.from).toBe(0);
    expect(v.steps.step).toHaveLength(stepCount);
    expect(v.steps.seq).toHaveLength(stepCount);
    expect(v.steps.loss.every((x: unknown) => typeof x === 'number')).toBe(true);
    expect(v.steps.step).toEqual(Array.from({ length: stepCount }, (_, i) => i + 1));
    expect(v.checkpoints.map((c: { index: number }) => c.index)).toEqual([0, 1, 2, 3, 4]);
    expect(v.evals).toHaveLength(5);
    expect(v.transitions[0]).toMatchObject({ from: 'idle', step: 0 });
    expect(v.transitions.at(-1)).toMatchObject({ to: 'stopped', step: stepCount });
    expect(body.created.config.batchSize).toBe(16);
    expect(body.created.origin).toEqual({ step: 0, examplesSeen: 0 });
    expect(body.run.lastSeq).toBe(v.lastSeq);
    // A delta: only what comes after `since`.
    const delta = (await getJson(base, `/api/runs/iris-a?since=${v.lastSeq - 3}`)).body.view;
    expect(delta.from).toBe(v.lastSeq - 2);
    expect(delta.lastSeq).toBe(v.lastSeq);
    expect(delta.steps.step.length).toBeLessThanOrEqual(3);
  });

  it('GET /api/runs/:id/state?at= is `retrace state --at` (stateAt over the log), with the events around', async () => {
    const history = await readRun(server.store, 'iris-a');
    for (const at of ['step:10', '30', String(history.checkpoints[2]!.seq), 'ckpt:1', 'best', 'last']) {
      const { status, body } = await getJson(base, `/api/runs/iris-a/state?at=${at}`);
      expect(status).toBe(200);
      const expected = await stateAt(history, await resolveAt(history, at), 6);
      expect(body.seq).toBe(expected.seq);
      expect(body.state).toBe(expected.state);
      expect(body.step).toBe(expected.step);
      expect(body.context).toEqual(JSON.parse(JSON.stringify(expected.context)));
      expect(body.nearestCheckpoint).toEqual(expected.nearestCheckpoint);
      expect(body.around.map((r: { seq: number }) => r.seq)).toEqual(expected.around.map((r) => r.seq));
      expect(body.record.seq).toBe(expected.seq);
    }
    const { body } = await getJson(base, '/api/runs/iris-a/state?at=step:10');
    expect(body).toMatchObject({ state: 'training', step: 10 });
    // Light records: no tensor lists or stored snapshots.
    const ckpt = (await getJson(base, `/api/runs/iris-a/state?at=${history.checkpoints[1]!.seq}`)).body.record;
    expect(ckpt.type).toBe('checkpoint.committed');
    expect(ckpt.data.weights).toBeUndefined();
    expect(ckpt.data.machine).toBeUndefined();
    expect(ckpt.data.weightTensors).toBeGreaterThan(0);
  });

  it('GET /api/runs/:id/events: light records in a range', async () => {
    const { status, body } = await getJson(base, '/api/runs/iris-a/events?from=0&to=5');
    expect(status).toBe(200);
    expect(body.events.map((e: { seq: number }) => e.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(body.events[0].type).toBe('run.created');
    expect(body.events[0].data.model.topology).toBeUndefined();
    expect(typeof body.events[0].text).toBe('string');
  });

  it('GET /api/runs/:id/stream: the run as server-sent events, from `since`', async () => {
    const events = await readEvents(new URL('/api/runs/iris-a/stream', base).href, (e) => e.event === 'delta');
    const delta = events.find((e) => e.event === 'delta')!;
    expect(delta.data.view.steps.step).toHaveLength(stepCount);
    expect(delta.id).toBe(String(delta.data.view.lastSeq));
    const global = await readEvents(new URL('/api/stream', base).href, (_e, all) => all.some((x) => x.event === 'runs') && all.some((x) => x.event === 'jobs'));
    expect(global.find((e) => e.event === 'runs')!.data.runs[0].runId).toBe('iris-a');
  });
});

describe('bad input is a 4xx with a JSON message, never a crash', () => {
  const cases: Array<[string, string, unknown, number, RegExp]> = [
    ['GET', '/api/runs/.hidden', undefined, 400, /invalid run id/],
    ['GET', '/api/runs/no-such-run', undefined, 404, /unknown run "no-such-run".*iris-a/],
    ['GET', '/api/runs/iris-a/state?at=abc', undefined, 400, /at must be best, last, ckpt:K, int:N, step:N or an event number/],
    ['GET', '/api/runs/iris-a/state?at=99999', undefined, 400, /no event 99999/],
    ['GET', '/api/runs/iris-a/state?at=step:9999', undefined, 400, /no step 9999/],
    ['GET', '/api/runs/iris-a?since=x', undefined, 400, /since must be an integer/],
    ['GET', '/api/jobs/nope', undefined, 404, /no job/],
    ['GET', '/api/nothing-here', undefined, 404, /no route/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:99' }, 400, /has no checkpoint 99 \(it has 0, 1, 2, 3, 4\)/],
    ['POST', '/api/runs/iris-a/branch', { point: 'sideways' }, 400, /point must be best, last, ckpt:K/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { lr: -1 } }, 400, /lr/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { learningRate: 1 } }, 400, /unknown config key "learningRate"/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { optimizer: 'lion' } }, 400, /optimizer/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { model: 'module:/tmp/evil.js' } }, 403, /overrides\.model: "module:\/tmp\/evil\.js" is outside the data roots/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { initFrom: '/tmp' } }, 403, /overrides\.initFrom: "\/tmp" is outside the data roots/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', overrides: { runId: 'iris-a' } }, 409, /already exists/],
    ['POST', '/api/runs/iris-a/branch', { point: 'ckpt:1', extra: 1 }, 400, /unknown field "extra"/],
    ['POST', '/api/runs/iris-a/branch', [1, 2], 400, /JSON object/],
    ['POST', '/api/runs/iris-a/branch', '{not json', 400, /not valid JSON/],
    ['POST', '/api/runs/no-such-run/branch', { point: 'best' }, 404, /unknown run/],
    ['POST', '/api/runs/iris-a/export', { checkpoint: 'middle' }, 400, /checkpoint must be best, last or a checkpoint number/],
    ['POST', '/api/runs/iris-a/export', { checkpoint: 9 }, 400, /no checkpoint 9/],
    ['POST', '/api/runs/iris-a/export', { name: '../../etc' }, 400, /folder name/],
    ['POST', '/api/runs/iris-a/replay', { to: 'step:x' }, 400, /to must be/],
    ['POST', '/api/train', { config: { batchSize: 0 } }, 400, /batchSize/],
    ['POST', '/api/train', { config: { dataset: 'imagenet' } }, 400, /dataset/],
    ['POST', '/api/train', { config: { runId: 'iris-a' } }, 409, /already exists/],
  ];
  for (const [method, route, body, status, message] of cases) {
    it(`${method} ${route} ${body === undefined ? '' : JSON.stringify(body)} → ${status}`, async () => {
      const res = method === 'GET' ? await getJson(base, route) : await postJson(base, route, body);
      expect(res.status).toBe(status);
      expect(res.body.error).toMatch(message);
      expect(typeof res.body.code).toBe('string');
    });
  }

  it('refuses a body that is not JSON, a cross-site POST and a foreign Host header', async () => {
    const plain = await fetch(new URL('/api/runs/iris-a/branch', base), { method: 'POST', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${server.token}` }, body: '{}' });
    expect(plain.status).toBe(415);
    const cross = await postJson(base, '/api/runs/iris-a/branch', { point: 'best' }, { Origin: 'http://evil.example' });
    expect(cross.status).toBe(403);
    expect(cross.body.error).toMatch(/cross-origin/);
    // DNS rebinding: a page on another name resolving to 127.0.0.1 must not reach the API.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, path: '/api/runs', headers: { Host: `evil.example:${server.port}`, Authorization: `Bearer ${server.token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
    const huge = await postJson(base, '/api/train', { config: { runId: 'x'.repeat(70_000) } });
    expect(huge.status).toBe(413);
    // The server is still fine.
    expect((await getJson(base, '/api/runs')).status).toBe(200);
  });
});

describe('jobs started from the page', () => {
  it('branch from a checkpoint runs in the server; the branch lists its parent and branch point', async () => {
    const res = await postJson(base, '/api/runs/iris-a/branch', { point: 'ckpt:2', overrides: { lr: 0.05, runId: 'iris-b' } });
    expect(res.status).toBe(202);
    expect(res.body.runId).toBe('iris-b');
    expect(res.body.job).toMatchObject({ kind: 'branch', runId: 'iris-b', status: 'running' });
    const job = await waitForJob(base, res.body.job.id);
    expect(job.status, job.error).toBe('done');
    expect(job.result).toMatchObject({ runId: 'iris-b', state: 'stopped', stopReason: 'budget' });
    expect(job.progress.done).toBe(job.progress.total);
    const { body } = await getJson(base, '/api/runs');
    const b = body.runs.find((r: { runId: string }) => r.runId === 'iris-b');
    const history = await readRun(server.store, 'iris-a');
    const ckpt2 = history.checkpointByIndex(2)!;
    expect(b).toMatchObject({ parent: { runId: 'iris-a', point: 'ckpt:2', step: ckpt2.data.step, seq: ckpt2.seq }, originStep: ckpt2.data.step, writer: null });
    const again = await postJson(base, '/api/runs/iris-a/branch', { point: 'ckpt:2', overrides: { runId: 'iris-b' } });
    expect(again.status).toBe(409);
  });

  it('verify replay reports progress and an identical result', async () => {
    const res = await postJson(base, '/api/runs/iris-a/replay', {});
    expect(res.status).toBe(202);
    const job = await waitForJob(base, res.body.job.id);
    expect(job.status, job.error).toBe('done');
    expect(job.result).toMatchObject({ runId: 'iris-a', identical: true, firstDivergence: null, toStep: stepCount });
    expect(job.progress.total).toBeGreaterThan(0);
  });

  it('export writes a TF.js model and marks the run exported (it stays stopped)', async () => {
    const res = await postJson(base, '/api/runs/iris-b/export', { checkpoint: 1 });
    expect(res.status, res.body.error).toBe(200);
    expect(res.body.result).toMatchObject({ runId: 'iris-b', checkpoint: 1 });
    expect(res.body.result.out).toBe(path.join(dir, 'exports', 'iris-b-ckpt1'));
    expect(existsSync(path.join(res.body.result.out, 'model.json'))).toBe(true);
    const row = (await getJson(base, '/api/runs')).body.runs.find((r: { runId: string }) => r.runId === 'iris-b');
    expect(row.state).toBe('stopped');
    expect(row.exported).toBe(true);
    // Any point, as `retrace export --checkpoint`: a step between checkpoints is re-executed to.
    const replayed = await replay('iris-b', { store: server.store, to: 'step:5' });
    const at5 = await postJson(base, '/api/runs/iris-b/export', { checkpoint: 'step:5' });
    expect(at5.status, at5.body.error).toBe(200);
    expect(at5.body.result).toMatchObject({ runId: 'iris-b', checkpoint: null, step: 5, weightsHash: replayed.weightsHash });
    expect(at5.body.result.out).toBe(path.join(dir, 'exports', 'iris-b-step5'));
  });

  it('a training started from the page streams its steps, and can be stopped (interrupt checkpoint)', async () => {
    const res = await postJson(base, '/api/train', { config: { ...IRIS, stopPoint: 400, runId: 'iris-live' } });
    expect(res.status).toBe(202);
    const steps: number[] = [];
    await readEvents(new URL('/api/runs/iris-live/stream', base).href, (e) => {
      if (e.event === 'delta') steps.push(e.data.run.step);
      return new Set(steps.filter((s) => s > 0)).size >= 3;
    });
    expect(steps.filter((s) => s > 0).length).toBeGreaterThanOrEqual(3);
    const row = (await getJson(base, '/api/runs')).body.runs.find((r: { runId: string }) => r.runId === 'iris-live');
    expect(row.writer).toMatchObject({ inProcess: true, pid: process.pid });
    // Exporting a run that is training here is refused, not queued.
    expect((await postJson(base, '/api/runs/iris-live/export', {})).status).toBe(409);
    const stopped = await postJson(base, `/api/jobs/${res.body.job.id}/stop`, {});
    expect(stopped.body.job.status).toBe('stopping');
    const job = await waitForJob(base, res.body.job.id);
    expect(job.result).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
    const interruptedAt = job.result.step as number;
    // Only an interrupted run resumes; this one does, from its interrupt checkpoint.
    expect((await postJson(base, '/api/runs/iris-a/resume', {})).status).toBe(409);
    const resumed = await postJson(base, '/api/runs/iris-live/resume', {});
    expect(resumed.status, resumed.body.error).toBe(202);
    const until = Date.now() + 20_000;
    while ((await getJson(base, `/api/jobs/${resumed.body.job.id}`)).body.job.progress.done <= interruptedAt + 20) {
      if (Date.now() > until) throw new Error('the resumed run did not progress');
      await new Promise((r) => setTimeout(r, 50));
    }
    await postJson(base, `/api/jobs/${resumed.body.job.id}/stop`, {});
    const again = await waitForJob(base, resumed.body.job.id);
    expect(again.result).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
    expect(again.result.step).toBeGreaterThan(interruptedAt);
    const live = (await getJson(base, '/api/runs/iris-live')).body;
    expect(live.view.steps.step).toEqual(Array.from({ length: again.result.step }, (_, i) => i + 1));
  });
});

describe('live viewing of a run another process trains', () => {
  it('follows its steps through read copies, never failing on its lock', async () => {
    const storeDir = path.join(dir, 'store');
    // 640 MNIST digits / 64 × 15 passes, one checkpoint: 150 steps of ~20 ms in one epoch, fewer
    // than the writer's 256-record buffer, so only its time-based flush shows them before the end.
    const child = trainInChild(storeDir, 'mnist-other', ['--dataset', 'mnist', '--backend', 'wasm', '--training-examples', '640', '--batch-size', '64', '--stop-point', '15', '--checkpoints', '1']);
    const exit = exitOf(child);
    try {
      const seen: Array<{ step: number; writer: { pid: number } | null; state: string }> = [];
      const until = Date.now() + 30_000;
      const probe = await Store.open(storeDir);
      try {
        while (!(await probe.hasRun('mnist-other'))) {
          if (Date.now() > until) throw new Error('the child never created its run');
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await probe.close();
      }
      await readEvents(
        new URL('/api/runs/mnist-other/stream', base).href,
        (e) => {
          if (e.event === 'delta' || e.event === 'run') seen.push({ step: e.data.run.step, writer: e.data.run.writer, state: e.data.run.state });
          return seen.length > 0 && seen[seen.length - 1]!.state === 'stopped';
        },
        60_000,
      );
      const { code, stderr } = await exit;
      expect(code, stderr).toBe(0);
      const live = seen.filter((s) => s.writer !== null);
      expect(live.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(1);
      expect(live[0]!.writer!.pid).toBe(child.pid);
      const steps = seen.map((s) => s.step);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(seen.at(-1)).toMatchObject({ step: 150, state: 'stopped' });
      const row = (await getJson(base, '/api/runs')).body.runs.find((r: { runId: string }) => r.runId === 'mnist-other');
      expect(row).toMatchObject({ step: 150, state: 'stopped', writer: null });
      // Steps show between checkpoints whenever an epoch lasts longer than the writer's flush
      // interval (1 s) plus a poll: the page never waits for a checkpoint.
      const history = await readRun(server.store, 'mnist-other');
      const ckpts = history.checkpoints.map((c) => ({ step: c.data.step, at: Date.parse(c.at) }));
      const slowEpochs = ckpts.slice(1).filter((c, i) => c.at - ckpts[i]!.at > 2_000);
      for (const epoch of slowEpochs) {
        const inside = steps.filter((s) => s > 0 && s < epoch.step);
        expect(inside.length, `no step seen inside the epoch ending at step ${epoch.step}: ${JSON.stringify(steps)}`).toBeGreaterThan(0);
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
});
