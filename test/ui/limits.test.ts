// What the dashboard keeps per request is bounded. About 11,000 quickly failing POST /api/train
// once made /api/runs and /api/jobs answer 500 ("Invalid string length") at 1.3 GB until restart:
// here 3,000 failing trainings flood a real server (loopback only) while a page's event stream is
// open and not read, and the server still answers, keeping at most 200 finished jobs. The jobs
// and runs lists are paginated (?limit=&cursor=); event streams are capped.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train } from '../../src/run/train.js';
import { Hub } from '../../src/ui/hub.js';
import { Jobs, type JobInfo } from '../../src/ui/jobs.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, getJson, postJson, removeTempDirs, tempDir, useToken } from './helpers.js';

let dir: string;
let server: UiServer;
const RUNS = ['r-a', 'r-b', 'r-c', 'r-d', 'r-e'];

beforeAll(async () => {
  dir = await tempDir('retrace-ui-limits-');
  // Header only: the loader fails at once ("no data rows"), after the job has started.
  await writeFile(path.join(dir, 'bad.csv'), 'a,b,label\n');
  for (const runId of RUNS) await train({ store: path.join(dir, 'store'), config: { ...IRIS, stopPoint: 0.2, checkpoints: 1, runId }, command: 'test' });
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200, cwd: dir, log: () => {} });
  useToken(server.token);
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

async function allJobPages(limit: number): Promise<JobInfo[]> {
  const out: JobInfo[] = [];
  let cursor: string | null = null;
  for (let pages = 0; ; pages++) {
    const { status, body }: { status: number; body: any } = await getJson(server.url, `/api/jobs?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(status).toBe(200);
    expect(body.jobs.length).toBeLessThanOrEqual(limit);
    out.push(...body.jobs);
    cursor = body.nextCursor;
    if (cursor === null) return out;
    expect(pages).toBeLessThan(1000);
  }
}

describe('the runs list in pages', () => {
  it('/api/runs?limit=&cursor= walks the runs by id', async () => {
    const ids: string[] = [];
    let cursor: string | null = null;
    const sizes: number[] = [];
    do {
      const { status, body }: { status: number; body: any } = await getJson(server.url, `/api/runs?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(status).toBe(200);
      sizes.push(body.runs.length);
      ids.push(...body.runs.map((r: { runId: string }) => r.runId));
      cursor = body.nextCursor;
    } while (cursor !== null);
    expect(ids).toEqual(RUNS);
    expect(sizes).toEqual([2, 2, 1]);
    // A cursor is a position, not an index: a page after "r-b" starts at "r-c".
    expect((await getJson(server.url, '/api/runs?limit=1&cursor=r-b')).body.runs[0].runId).toBe('r-c');
  });
});

describe('a flood of failing trainings', () => {
  it('3,000 failing POST /api/train: /api/runs and /api/jobs still answer 200, at most 200 finished jobs kept', { timeout: 240_000 }, async () => {
    // A page that opened the event stream and stopped reading it.
    const stalled = new AbortController();
    const stream = await fetch(new URL('/api/stream', server.url), { headers: { Authorization: `Bearer ${server.token}` }, signal: stalled.signal });
    expect(stream.status).toBe(200);
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < 3000) {
        next += 1;
        const res = await postJson(server.url, '/api/train', { config: { dataset: 'csv:bad.csv', label: 'label' } });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 202) accepted.push(res.body.job.id);
        else expect(res.status, JSON.stringify(res.body)).toBe(429); // 4 jobs at once, at most
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    stalled.abort();
    expect([...statuses.values()].reduce((a, b) => a + b)).toBe(3000);
    expect(accepted.length, JSON.stringify([...statuses])).toBeGreaterThan(400);
    const until = Date.now() + 60_000;
    while (server.jobs.running().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));

    const runs = await getJson(server.url, '/api/runs');
    expect(runs.status).toBe(200);
    // (Runs a failing training may leave are data on disk, not request memory: paginated too.)
    expect(runs.body.runs.length).toBeLessThanOrEqual(100);
    expect(runs.body.runs.slice(0, RUNS.length).map((r: { runId: string }) => r.runId)).toEqual(RUNS);
    expect(runs.body.jobs.length).toBeLessThanOrEqual(200);
    const jobs = await allJobPages(200);
    expect(jobs).toHaveLength(200);
    expect(jobs.every((j) => j.status === 'failed' && typeof j.error === 'string' && j.error.length > 0)).toBe(true);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(200);
    // The first ones are gone; every kept one was accepted by the flood.
    expect((await getJson(server.url, `/api/jobs/${accepted[0]}`)).status).toBe(404);
    const ids = new Set(accepted);
    expect(jobs.every((j) => ids.has(j.id))).toBe(true);
    // Still serving: a real training starts and finishes.
    const ok = await postJson(server.url, '/api/train', { config: { ...IRIS, stopPoint: 0.2, checkpoints: 1, runId: 'after-flood' } });
    expect(ok.status).toBe(202);
    expect((await server.jobs.wait(ok.body.job.id))?.status).toBe('done');
  });
});

describe('pagination', () => {
  it('/api/jobs?limit=&cursor= walks every kept job once, newest first', async () => {
    const all = server.jobs.list();
    expect(all.length).toBeGreaterThan(10);
    for (const limit of [1, 7, 50, 200]) {
      const walked = await allJobPages(limit);
      expect(walked.map((j) => j.id)).toEqual(all.map((j) => j.id));
    }
    const first = (await getJson(server.url, '/api/jobs')).body;
    expect(first.jobs).toHaveLength(50); // the default page
    expect(typeof first.nextCursor).toBe('string');
  });

  it('a bad limit or cursor is a 400 naming it', async () => {
    for (const route of ['/api/jobs?limit=0', '/api/jobs?limit=201', '/api/jobs?limit=x', '/api/runs?limit=1001', '/api/runs?limit=-1']) {
      const res = await getJson(server.url, route);
      expect(res.status, route).toBe(400);
      expect(res.body.error).toMatch(/^limit must be an integer from 1 to \d+/);
    }
    for (const route of ['/api/jobs?cursor=abc', '/api/runs?cursor=..%2Fx', `/api/jobs?cursor=${'9'.repeat(30)}`]) {
      const res = await getJson(server.url, route);
      expect(res.status, route).toBe(400);
      expect(res.body.code).toBe('BAD_CURSOR');
    }
  });
});

describe('event streams', () => {
  it('at most 64 open at once: the next is 429 until one closes', { timeout: 60_000 }, async () => {
    const open: AbortController[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        const ctl = new AbortController();
        open.push(ctl);
        const res = await fetch(new URL(i % 2 ? '/api/stream' : '/api/runs/r-a/stream', server.url), { headers: { Authorization: `Bearer ${server.token}` }, signal: ctl.signal });
        expect(res.status, `stream ${i}`).toBe(200);
      }
      const refused = await getJson(server.url, '/api/stream');
      expect(refused.status).toBe(429);
      expect(refused.body.code).toBe('TOO_MANY_STREAMS');
      open.pop()!.abort();
      const until = Date.now() + 20_000;
      let status = 429;
      while (status === 429 && Date.now() < until) {
        const ctl = new AbortController();
        const res = await fetch(new URL('/api/stream', server.url), { headers: { Authorization: `Bearer ${server.token}` }, signal: ctl.signal });
        status = res.status;
        if (status === 200) open.push(ctl);
        else await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    } finally {
      for (const ctl of open) ctl.abort();
    }
  });
});

describe('a stream closed while it was sending', () => {
  it('does not sleep: a closed subscription never waits (a page that left freed its stream only at the next keep-alive, 15 s later)', async () => {
    const hub = new Hub();
    const sub = hub.subscribe(['runs', 'run:x']);
    sub.close(); // the abort arrives while the stream is busy writing, not waiting
    await sub.wait(2 ** 31 - 1); // before the fix: hangs (the test times out)
    hub.notify('runs'); // and nobody is left to wake
  });
});

describe('Jobs keeps what it holds bounded (property)', () => {
  it('any interleaving of starts and ends: running jobs all kept, at most maxFinished finished, the newest finished kept, pages walk the list', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(fc.constant('start' as const), fc.nat(20)), { maxLength: 80 }), fc.integer({ min: 1, max: 6 }), async (ops, maxFinished) => {
        const jobs = new Jobs(() => {}, 1000, maxFinished);
        const pending: Array<{ id: string; end: () => void }> = [];
        const finishedOrder: string[] = [];
        for (const op of ops) {
          if (op === 'start') {
            let end!: () => void;
            const done = new Promise<void>((r) => (end = r));
            const info = jobs.start('replay', 'r', {}, async () => {
              await done;
              throw new Error('x'.repeat(5_000));
            });
            pending.push({ id: info.id, end });
          } else if (pending.length > 0) {
            const [job] = pending.splice(op % pending.length, 1);
            job!.end();
            await jobs.wait(job!.id);
            finishedOrder.push(job!.id);
          }
        }
        const list = jobs.list();
        const running = list.filter((j) => j.status === 'running');
        const finished = list.filter((j) => j.status === 'failed');
        expect(running.map((j) => j.id).sort()).toEqual(pending.map((p) => p.id).sort());
        expect(finished.map((j) => j.id).sort()).toEqual(finishedOrder.slice(-maxFinished).sort());
        expect(finished.every((j) => (j.error ?? '').length <= 2_001)).toBe(true);
        const walked: string[] = [];
        let cursor: string | null = null;
        do {
          const page = jobs.page({ limit: 2, cursor });
          walked.push(...page.jobs.map((j) => j.id));
          cursor = page.nextCursor;
        } while (cursor !== null);
        expect(walked).toEqual(list.map((j) => j.id));
        for (const p of pending) p.end();
        await jobs.shutdown();
      }),
      { numRuns: 100 },
    );
  });
});
