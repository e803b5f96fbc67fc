// The dashboard's action routes: jobs that write (train, branch, resume), replays that verify a
// run, exports, and stopping a job. Each checks its request and the run's state before it starts a
// job, so a refused request changes nothing; train, branch and resume start through one helper.
import path from 'node:path';
import type { Context, Hono } from 'hono';
import { canExport, canResume } from '../../machines/queries.js';
import { initialBudget } from '../../machines/training.machine.js';
import { resolveConfig, type ConfigInput } from '../config.js';
import type { LogRecord } from '../log/events.js';
import type { RunStore } from '../storage/types.js';
import { newRunId } from '../run/common.js';
import { inheritableConfig } from '../run/environment.js';
import { checkpointHolding, resolvePoint } from '../run/points.js';
import type { UiContext } from './context.js';
import { publicJobError, readsUserFiles } from './data-roots.js';
import type { JobInfo } from './jobs.js';
import {
  allowOnly,
  checkpointParam,
  configParam,
  exportNameParam,
  HttpError,
  objectBody,
  pointParam,
  runIdParam,
} from './validate.js';

export function actionRoutes(app: Hono, ctx: UiContext): void {
  const { store, cwd, exportDir, roots, loopback, log, cache, jobs, hub, runOrThrow } = ctx;

  app.post('/api/jobs/:id/stop', (c) => {
    const job = jobs.stop(c.req.param('id'));
    if (!job) throw new HttpError(404, `no job ${JSON.stringify(c.req.param('id'))}`, 'NOT_FOUND');
    return c.json({ job });
  });

  /** Progress of a training job from its records: steps done of the budget. */
  function trainingProgress(setProgress: (done: number, total: number | null) => void) {
    let total: number | null = null;
    return (record: LogRecord) => {
      if (record.type === 'run.created') total = initialBudget(record.data.settings);
      else if (record.type === 'step.finished') setProgress(record.data.step, total);
    };
  }

  function refuseWhileExporting(runId: string): void {
    if (jobs.running().some((j) => j.kind === 'export' && j.runId === runId)) {
      throw new HttpError(409, `run ${runId} is being exported by this server: try again in a moment`, 'RETRACE_RUN_LOCKED');
    }
  }

  /** What a failed job shows: never the words of a file its run reads (data-roots.ts). */
  function jobError(kind: string, runId: string, config: Partial<Record<string, unknown>> | null | undefined): (err: unknown) => string {
    const reads = readsUserFiles(config);
    return (err) => publicJobError(err, { readsUserFiles: reads, what: `${kind} ${runId}`, log });
  }

  async function claimRunId(config: ConfigInput): Promise<string> {
    const taken = async (id: string) => (await store.hasRun(id)) || jobs.writing(id);
    if (config.runId !== undefined) {
      if (await taken(config.runId)) throw new HttpError(409, `run "${config.runId}" already exists`, 'RETRACE_RUN_EXISTS');
      return config.runId;
    }
    // A generated id is the second and 16 random bits: trainings started in the same second may
    // draw the same one; another is drawn (a user's own id is never changed).
    for (;;) {
      const runId = newRunId();
      if (!(await taken(runId))) return runId;
    }
  }

  /**
   * Starts a job that trains (train, branch, resume) and answers 202 `{ job, runId }`. The job's
   * progress is steps done of the run's budget, read from run.created (`created`: the run's own,
   * when it already has one); its records go to the page; its warnings, when `warnings` is given,
   * to that list (the job's params show it). `run` calls the library with `hooks` spread in.
   */
  function startTraining(c: Context, job: TrainingJob, run: (hooks: TrainingHooks) => Promise<unknown>): Response {
    const { kind, runId, params, config, warnings, created } = job;
    const info = jobs.start(kind, runId, params, async (h) => {
      const progress = trainingProgress(h.setProgress);
      if (created) progress(created);
      return run({
        store,
        cwd,
        signal: h.signal,
        command: `ui ${kind}`,
        onWarning: warnings ? (m) => note(warnings, m) : undefined,
        onRecord: (r) => {
          progress(r);
          h.onRecord(r);
        },
      });
    }, jobError(kind, runId, config));
    hub.notify('runs');
    return c.json({ job: info, runId }, 202);
  }

  app.post('/api/train', async (c) => {
    const body = await jsonBody(c);
    allowOnly(body, ['config']);
    const config = await roots.check(configParam(body.config, 'config'), 'config', { loopback });
    resolveConfig(config as Record<string, unknown>); // the whole config, defaults filled in, must hold
    const runId = await claimRunId(config);
    return startTraining(c, { kind: 'train', runId, params: { config }, config }, async (hooks) => {
      const { train } = await import('../run/train.js');
      return train({ ...hooks, config: { ...config, runId } });
    });
  });

  app.post('/api/runs/:id/branch', async (c) => {
    const parentId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['point', 'overrides']);
    const point = pointParam(body.point ?? 'last', 'point');
    const overrides = await roots.check(configParam(body.overrides, 'overrides'), 'overrides', { loopback });
    refuseWhileExporting(parentId);
    const { history } = await runOrThrow(parentId, true); // fresh: the page may have seen the point in an overview read from the log
    const resolved = await history.resolvePoint(point);
    // What a branch inherits, as `retrace branch` decides it (run/environment.ts inheritableConfig).
    const inherited = inheritableConfig(history.created);
    resolveConfig(inherited, overrides as Record<string, unknown>);
    const runId = await claimRunId(overrides);
    const warnings: string[] = [];
    const params = { parent: parentId, point, step: resolved.step, seq: resolved.seq, overrides, warnings };
    return startTraining(c, { kind: 'branch', runId, params, config: { ...inherited, ...overrides }, warnings }, async (hooks) => {
      const { branch } = await import('../run/branch.js');
      return branch(`${parentId}@${point}`, { ...hooks, overrides: { ...overrides, runId } });
    });
  });

  app.post('/api/runs/:id/resume', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, []);
    const busy = jobs.touching(runId);
    if (busy.length > 0) throw new HttpError(409, `run ${runId} is busy in this server (${busy.map((j) => `${j.kind} ${j.runId}`).join(', ')}): wait for it to finish`, 'RETRACE_RUN_LOCKED');
    const { history, row } = await runOrThrow(runId, true);
    if (row.writer) throw new HttpError(409, `run ${runId} is being written by process ${row.writer.pid} (${row.writer.command})`, 'RETRACE_RUN_LOCKED');
    const final = history.snapshotAt().snapshot;
    const resumable = canResume(final);
    if (!resumable.ok) throw new HttpError(409, `run ${runId} cannot be resumed: ${resumable.reason}`, 'NOT_RESUMABLE');
    await cache.settle(runId);
    if (jobs.touching(runId).length > 0) throw new HttpError(409, `run ${runId} became busy in this server: try again`, 'RETRACE_RUN_LOCKED');
    const warnings: string[] = [];
    return startTraining(c, { kind: 'resume', runId, params: { warnings }, config: history.created.config, warnings, created: history.records[0]! }, async (hooks) => {
      const { resume } = await import('../run/resume.js');
      return resume(runId, hooks);
    });
  });

  app.post('/api/runs/:id/export', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['checkpoint', 'name']);
    const checkpoint = checkpointParam(body.checkpoint);
    const name = exportNameParam(body.name);
    // One job at a time on a run being exported: the export opens it for writing in this process.
    const busy = jobs.touching(runId);
    if (busy.length > 0) throw new HttpError(409, `run ${runId} is busy in this server (${busy.map((j) => `${j.kind} ${j.runId}`).join(', ')}): wait for it to finish`, 'RETRACE_RUN_LOCKED');
    const { history } = await runOrThrow(runId, true);
    const exportable = canExport(history.snapshotAt().snapshot);
    if (!exportable.ok) throw new HttpError(409, `run ${runId} cannot be exported: ${exportable.reason}`, 'NOT_STOPPED');
    const resolved = await resolvePoint(history, checkpoint, 'checkpoint');
    const ckpt = checkpointHolding(history.checkpoints, resolved);
    const out = path.join(exportDir, name ?? `${runId}-${ckpt ? `ckpt${ckpt.data.index}` : `step${resolved.step}`}`);
    let failure: unknown = null;
    // No read of the run may be in flight when the export opens it (and none starts afterwards:
    // the cache never reads a run a job of this process writes).
    await cache.settle(runId);
    if (jobs.touching(runId).length > 0) throw new HttpError(409, `run ${runId} became busy in this server: try again`, 'RETRACE_RUN_LOCKED');
    const exportError = jobError('export', runId, history.created.config);
    const job = jobs.start('export', runId, { checkpoint: ckpt ? ckpt.data.index : null, step: resolved.step, out }, async () => {
      try {
        const { exportRun } = await import('../run/export.js');
        return await exportRun(runId, { store, cwd, checkpoint: ckpt ? `ckpt:${ckpt.data.index}` : checkpoint, out });
      } catch (err) {
        failure = err;
        throw err;
      }
    }, exportError);
    const done = (await jobs.wait(job.id)) as JobInfo;
    // The route answers with the job's public message (never a user file's words) and the
    // status the error's kind maps to.
    if (failure) throw Object.assign(failure as Error, { message: exportError(failure) });
    return c.json({ job: done, result: done.result });
  });

  app.post('/api/runs/:id/replay', async (c) => {
    const runId = runIdParam(c.req.param('id'));
    const body = await jsonBody(c);
    allowOnly(body, ['from', 'to']);
    const from = body.from === undefined || body.from === null ? undefined : pointParam(body.from, 'from');
    const to = body.to === undefined || body.to === null ? undefined : pointParam(body.to, 'to');
    refuseWhileExporting(runId);
    const { history } = await runOrThrow(runId, true); // fresh, as for a branch
    const target = to ? await history.resolvePoint(to) : null;
    const start = from ? (await history.resolvePoint(from)).checkpoint : target ? target.checkpoint : (history.checkpointByIndex(0) ?? history.checkpoints[0]);
    if (!start) throw new HttpError(409, `run ${runId} has no checkpoint to replay from yet`, 'NOT_READY');
    const endSeq = target ? target.seq : history.lastSeq;
    const total = Math.max(1, endSeq - start.seq);
    const job = jobs.start('replay', runId, { from: from ?? `ckpt:${start.data.index}`, to: to ?? null, fromStep: start.data.step }, async (h) =>
      (await import('../run/replay.js')).replay(runId, {
        store,
        cwd,
        verify: true,
        from,
        to,
        onRecord: (r) => {
          if (h.signal.aborted) throw new Error('replay stopped from the dashboard');
          h.setProgress(Math.min(total, Math.max(0, r.seq - start.seq)), total);
        },
      }),
      jobError('replay', runId, history.created.config),
    );
    return c.json({ job }, 202);
  });
}

/** A job that trains, as startTraining starts it. */
interface TrainingJob {
  kind: 'train' | 'branch' | 'resume';
  runId: string;
  params: Record<string, unknown>;
  /** The run's config as far as known (what a failed job may show depends on it: data-roots.ts). */
  config: Partial<Record<string, unknown>> | null | undefined;
  warnings?: string[];
  created?: LogRecord;
}

/** What train(), branch() and resume() get from the job besides their own options. */
interface TrainingHooks {
  store: RunStore;
  cwd: string;
  signal: AbortSignal;
  command: string;
  onWarning: ((message: string) => void) | undefined;
  onRecord: (record: LogRecord) => void;
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
  return objectBody(body);
}

/** Keeps the first 20 warnings of a job, each cut to 500 characters: a job's params stay small. */
function note(warnings: string[], message: string): void {
  if (warnings.length < 20) warnings.push(message.length > 500 ? `${message.slice(0, 500)}…` : message);
}
