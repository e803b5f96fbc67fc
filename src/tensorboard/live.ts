// `train|resume|branch --tensorboard DIR`: the run's event file written while it trains, fed by
// the same `onRecord` listener as the progress bar. It must never slow or break training: events
// are buffered and appended at each checkpoint and at the end (a few kilobytes), and a write error
// is one warning, after which the writer stays quiet; the run goes on.
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { LogRecord } from '../log/events.js';
import type { StoreOption } from '../run/common.js';
import { withStore } from '../run/common.js';
import { readRun } from '../run/inspect.js';
import { eventAfterCheckpoint } from '../run/resume.js';
import { EventFileAppender, eventFileName, resumedFileSeconds } from './event-file.js';
import { RunProjection } from './projection.js';
import { loadTensorBoardProtos, type TbEvent } from './proto.js';

/** Events buffered before an append even without a checkpoint (bounds memory on long epochs). */
const MAX_PENDING = 2000;

export class LiveTensorBoard {
  private readonly projection = new RunProjection();
  private pending: TbEvent[] = [];
  private file: EventFileAppender | null = null;
  private failed = false;
  private readonly onExit = () => this.flush();

  private constructor(
    private readonly out: string,
    private readonly onWarning: (message: string) => void,
    /** For a resume: the file's name and first events, written once the resumed run records anything. */
    private resumeStart: { runId: string; name: string; header: TbEvent[] } | null,
  ) {
    // A second Ctrl-C exits at once: what is buffered still reaches the file.
    process.on('exit', this.onExit);
    // The .proto files are parsed before training starts, not at its first checkpoint.
    try {
      loadTensorBoardProtos();
    } catch (err) {
      this.fail(err);
    }
  }

  /** A writer for a run this process creates (train, branch): its file is named after run.created. */
  static forNewRun(out: string, onWarning: (message: string) => void): LiveTensorBoard {
    return new LiveTensorBoard(path.resolve(out), onWarning, null);
  }

  /**
   * A writer for `resume RUN`: reads the run's log as it is now, so the resumed process's file
   * starts with a SessionLog START at the resume step (see projection.ts) and steps keep the run's
   * origin. Its file is named for this process (now, host, pid, its place among the run's
   * processes). Returns null (after a warning) when the run cannot be read: resume reports why.
   */
  static async forResume(out: string, runId: string, opts: StoreOption, onWarning: (message: string) => void): Promise<LiveTensorBoard | null> {
    let history;
    try {
      history = await withStore(opts, (store) => readRun(store, runId));
    } catch (err) {
      // An unknown run is resume's error to report; anything else is said here once.
      if ((err as Error).name !== 'UnknownRunError') onWarning(`tensorboard: not writing run ${runId}: ${(err as Error).message}`);
      return null;
    }
    const checkpoint = history.checkpoints.at(-1);
    const from = checkpoint ? eventAfterCheckpoint(history, checkpoint.seq) : 1;
    const writer = new LiveTensorBoard(path.resolve(out), onWarning, null);
    const now = Date.now() / 1000;
    const header = writer.projection.beginResume(history.records.slice(0, from), now);
    const processes = history.records.filter((r) => r.type === 'process.attached').length;
    const seconds = resumedFileSeconds(now, history.records.at(-1)!.at);
    writer.resumeStart = { runId, name: eventFileName({ seconds, hostname: hostname(), pid: process.pid, n: processes }), header };
    return writer;
  }

  /** The `onRecord` listener. Never throws. */
  onRecord(record: LogRecord): void {
    if (this.failed) return;
    try {
      if (!this.file) this.open(record);
      this.pending.push(...this.projection.take(record));
      if (record.type === 'checkpoint.committed' || this.pending.length >= MAX_PENDING) this.flush();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Appends what is buffered, closes the file and stops listening for the process's exit. Never throws. */
  close(): void {
    process.off('exit', this.onExit);
    this.flush();
    try {
      this.file?.close();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The event file (null until the run recorded something). */
  get path(): string | null {
    return this.file?.file ?? null;
  }

  private open(first: LogRecord): void {
    if (this.resumeStart) {
      const { runId, name, header } = this.resumeStart;
      this.file = this.makeFile(runId, name);
      this.pending.push(...header);
      this.resumeStart = null;
      return;
    }
    if (first.type !== 'run.created') throw new Error(`internal: the first record of a new run is ${first.type}`);
    const at = Date.parse(first.at) / 1000;
    this.file = this.makeFile(first.data.runId, eventFileName({ seconds: at, hostname: hostname(), pid: process.pid, n: 0 }));
  }

  /** A new file: one already there under this name is another writer's (a `retrace tensorboard
   * --follow` of this run into the same folder), which is left alone. */
  private makeFile(runId: string, name: string): EventFileAppender {
    const dir = path.join(this.out, runId);
    fs.mkdirSync(dir, { recursive: true });
    return new EventFileAppender(path.join(dir, name), 'create');
  }

  private flush(): void {
    if (this.failed || !this.file || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.file.append(batch);
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.failed = true;
    this.pending = [];
    this.onWarning(`tensorboard: stopped writing ${this.file?.file ?? this.out} (${(err as Error).message}); training goes on`);
  }
}
