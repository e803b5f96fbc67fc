// Work the dashboard starts in the server process: trainings and branches (they run here, so the
// page follows them through onRecord), replays that verify a run, exports. Each job has an id, a
// status, progress and a result or an error; a failing job never takes the server down. What the
// server keeps is bounded however many requests come: at most `maxRunning` running jobs and the
// last `maxFinished` finished ones (older ones are dropped: their runs keep the facts), each with
// its error cut to one line of at most 2,000 characters.
import { randomBytes } from 'node:crypto';
import type { LogRecord } from '../log/events.js';

export type JobKind = 'train' | 'branch' | 'resume' | 'replay' | 'export';
export type JobStatus = 'running' | 'stopping' | 'done' | 'failed';

export interface JobInfo {
  id: string;
  kind: JobKind;
  /** The run the job writes (train, branch, resume, export) or reads (replay). */
  runId: string;
  status: JobStatus;
  startedAt: string;
  finishedAt: string | null;
  /** Steps done / the budget (train, branch), events verified / events to verify (replay). */
  progress: { done: number; total: number | null };
  /** What was asked (the point, the overrides...). */
  params: Record<string, unknown>;
  result: unknown;
  error: string | null;
}

export interface JobHooks {
  signal: AbortSignal;
  onRecord: (record: LogRecord) => void;
  setProgress: (done: number, total: number | null) => void;
}

interface Job extends JobInfo {
  /** Start order in this server: the key of the jobs list's cursor. */
  order: number;
  controller: AbortController;
  promise: Promise<void>;
}

/** A page of the jobs list, newest first; `nextCursor` is null on the last page. */
export interface JobsPage {
  jobs: JobInfo[];
  nextCursor: string | null;
}

export class JobLimitError extends Error {
  override name = 'JobLimitError';
}

export class Jobs {
  private readonly jobs = new Map<string, Job>();
  private readonly listeners = new Set<(job: JobInfo) => void>();
  /** Ids of finished jobs, oldest first (the first to go). */
  private readonly finished: string[] = [];
  private started = 0;

  constructor(
    /** Called for every record a job's run writes or verifies, with the job's run id. */
    private readonly onRecord: (runId: string, record: LogRecord) => void,
    private readonly maxRunning = 4,
    /** Finished jobs kept for the jobs list; older ones are forgotten. */
    private readonly maxFinished = 200,
  ) {}

  /** Told when a job starts, progresses (at most a few times a second) or ends. */
  subscribe(fn: (job: JobInfo) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(job: Job): void {
    const info = toInfo(job);
    for (const fn of this.listeners) {
      try {
        fn(info);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  running(): JobInfo[] {
    return this.list().filter((j) => j.status === 'running' || j.status === 'stopping');
  }

  /** True while a train/branch/resume/export job of this process has the run open for writing. */
  writing(runId: string): boolean {
    for (const j of this.jobs.values()) {
      if (j.runId === runId && j.kind !== 'replay' && (j.status === 'running' || j.status === 'stopping')) return true;
    }
    return false;
  }

  /** Running jobs that touch the run: on it, or branching from it. */
  touching(runId: string): JobInfo[] {
    return this.running().filter((j) => j.runId === runId || j.params.parent === runId);
  }

  /**
   * Starts `work` as a job. `publicError` turns a failure into the message the job shows (default:
   * the error's first line); the server uses it so a failure never quotes a user's file.
   */
  start(kind: JobKind, runId: string, params: Record<string, unknown>, work: (hooks: JobHooks) => Promise<unknown>, publicError: (err: unknown) => string = firstLine): JobInfo {
    if (this.running().length >= this.maxRunning) {
      throw new JobLimitError(`${this.maxRunning} jobs are already running in this server; wait for one to finish or stop one`);
    }
    const controller = new AbortController();
    let id: string;
    do id = `job-${randomBytes(4).toString('hex')}`;
    while (this.jobs.has(id));
    const job: Job = {
      id,
      order: ++this.started,
      kind,
      runId,
      status: 'running',
      startedAt: new Date().toISOString(),
      finishedAt: null,
      progress: { done: 0, total: null },
      params,
      result: null,
      error: null,
      controller,
      promise: Promise.resolve(),
    };
    let lastEmit = 0;
    const progressed = () => {
      const now = Date.now();
      if (now - lastEmit >= 200) {
        lastEmit = now;
        this.emit(job);
      }
    };
    const hooks: JobHooks = {
      signal: controller.signal,
      onRecord: (record) => {
        try {
          this.onRecord(runId, record);
        } catch {
          // never let a listener break the run
        }
      },
      setProgress: (done, total) => {
        job.progress = { done, total };
        progressed();
      },
    };
    this.jobs.set(job.id, job);
    job.promise = (async () => {
      try {
        job.result = await work(hooks);
        job.status = 'done';
      } catch (err) {
        job.status = 'failed';
        try {
          job.error = publicError(err);
        } catch {
          job.error = `${kind} failed`;
        }
      } finally {
        job.finishedAt = new Date().toISOString();
        this.finished.push(job.id);
        while (this.finished.length > this.maxFinished) this.jobs.delete(this.finished.shift()!);
        this.emit(job);
      }
    })();
    this.emit(job);
    return toInfo(job);
  }

  get(id: string): JobInfo | null {
    const j = this.jobs.get(id);
    return j ? toInfo(j) : null;
  }

  /** Every job kept (at most maxRunning + maxFinished), newest first. */
  list(): JobInfo[] {
    return this.page({ limit: Number.MAX_SAFE_INTEGER }).jobs;
  }

  /**
   * Jobs newest first, `limit` at a time. `cursor` is the `nextCursor` of the page before: the
   * next page starts after that job, even if jobs started or were dropped meanwhile.
   */
  page(opts: { limit: number; cursor?: string | null }): JobsPage {
    const after = opts.cursor == null ? Number.POSITIVE_INFINITY : Number(opts.cursor);
    const older = [...this.jobs.values()].filter((j) => j.order < after).sort((a, b) => b.order - a.order);
    const jobs = older.slice(0, opts.limit);
    const more = older.length > jobs.length;
    return { jobs: jobs.map(toInfo), nextCursor: more ? String(jobs[jobs.length - 1]!.order) : null };
  }

  /** Asks a job to stop: a training commits an interrupt checkpoint and stops as `interrupted`. */
  stop(id: string): JobInfo | null {
    const j = this.jobs.get(id);
    if (!j) return null;
    if (j.status === 'running') {
      j.status = 'stopping';
      j.controller.abort();
      this.emit(j);
    }
    return toInfo(j);
  }

  /** Waits for a job to end (tests, shutdown). */
  async wait(id: string): Promise<JobInfo | null> {
    const j = this.jobs.get(id);
    if (!j) return null;
    await j.promise;
    return toInfo(j);
  }

  /** Stops every running job and waits for them (each commits its interrupt checkpoint). */
  async shutdown(): Promise<void> {
    for (const j of this.jobs.values()) if (j.status === 'running') this.stop(j.id);
    await Promise.all([...this.jobs.values()].map((j) => j.promise));
  }
}

function firstLine(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!.slice(0, 2_000);
}

function toInfo(j: Job): JobInfo {
  return {
    id: j.id,
    kind: j.kind,
    runId: j.runId,
    status: j.status,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
    progress: { ...j.progress },
    params: j.params,
    result: j.result,
    error: j.error,
  };
}
