// Train, branch and resume from the page start through one helper (action-routes.ts): each
// answers 202 {job, runId}, records its process as `ui <kind>`, reports progress as steps done of
// the run's budget (read from run.created: the new run's, or the resumed run's own), and keeps its
// library warnings in the job's params (branch and resume).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialBudget } from '../../machines/training.machine.js';
import { readLog } from '../../src/run/inspect.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, getJson, postJson, removeTempDirs, tempDir, useToken, waitForJob } from './helpers.js';

let server: UiServer;
let base: string;

beforeAll(async () => {
  const dir = await tempDir();
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200 });
  base = server.url;
  useToken(server.token);
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

/** The run's budget (from its run.created) and the commands of the processes that wrote it. */
async function budgetAndCommands(runId: string): Promise<{ budget: number; commands: string[] }> {
  let budget = -1;
  const commands: string[] = [];
  for await (const r of readLog(server.store, runId)) {
    if (r.type === 'run.created') budget = initialBudget(r.data.settings);
    else if (r.type === 'process.attached') commands.push(r.data.command);
  }
  return { budget, commands };
}

describe('jobs that train, started from the page', () => {
  it('train, branch and resume each report steps of the budget, their command, and (branch, resume) their warnings', async () => {
    // train
    const t = await postJson(base, '/api/train', { config: { ...IRIS, stopPoint: 400, runId: 'j-train' } });
    expect(t.status, t.body.error).toBe(202);
    expect(t.body).toMatchObject({ runId: 'j-train', job: { kind: 'train', runId: 'j-train', params: { config: { runId: 'j-train' } } } });
    expect(t.body.job.params.warnings).toBeUndefined();
    // Stopped after some steps: an interrupted run, which resume continues below.
    const until = Date.now() + 30_000;
    while (((await getJson(base, `/api/jobs/${t.body.job.id}`)).body.job.progress?.done ?? 0) < 5) {
      if (Date.now() > until) throw new Error('the training did not progress');
      await new Promise((r) => setTimeout(r, 50));
    }
    await postJson(base, `/api/jobs/${t.body.job.id}/stop`, {});
    const trained = await waitForJob(base, t.body.job.id);
    expect(trained.result).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
    const tr = await budgetAndCommands('j-train');
    expect(trained.progress).toEqual({ done: trained.result.step, total: tr.budget });
    expect(tr.commands).toEqual(['ui train']);

    // branch, with another optimizer: the library warns that its optimizer state starts fresh
    const b = await postJson(base, '/api/runs/j-train/branch', { point: 'ckpt:0', overrides: { runId: 'j-branch', optimizer: 'sgd', stopPoint: 2 } });
    expect(b.status, b.body.error).toBe(202);
    expect(b.body).toMatchObject({ runId: 'j-branch', job: { kind: 'branch', runId: 'j-branch', params: { parent: 'j-train', point: 'ckpt:0' } } });
    const branched = await waitForJob(base, b.body.job.id);
    expect(branched.status, branched.error).toBe('done');
    expect(branched.params.warnings).toEqual([expect.stringMatching(/optimizer sgd instead of adam/)]);
    const br = await budgetAndCommands('j-branch');
    expect(branched.progress).toEqual({ done: branched.result.step, total: br.budget });
    expect(br.commands).toEqual(['ui branch']);

    // resume: the budget is known from the run's own run.created (no new one is written)
    const r = await postJson(base, '/api/runs/j-train/resume', {});
    expect(r.status, r.body.error).toBe(202);
    expect(r.body).toMatchObject({ runId: 'j-train', job: { kind: 'resume', runId: 'j-train', params: { warnings: [] } } });
    while (((await getJson(base, `/api/jobs/${r.body.job.id}`)).body.job.progress.done ?? 0) < trained.result.step + 3) {
      if (Date.now() > until + 30_000) throw new Error('the resumed run did not progress');
      await new Promise((res) => setTimeout(res, 50));
    }
    await postJson(base, `/api/jobs/${r.body.job.id}/stop`, {});
    const resumed = await waitForJob(base, r.body.job.id);
    expect(resumed.status, resumed.error).toBe('done');
    const rr = await budgetAndCommands('j-train');
    expect(rr.budget).toBe(tr.budget);
    expect(resumed.progress).toEqual({ done: resumed.result.step, total: rr.budget });
    expect(rr.commands).toEqual(['ui train', 'ui resume']);
  });
});
