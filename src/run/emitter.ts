// Where the driver's facts go. One path for every fact: the machine takes the event, the record
// (and the transition it caused) is either appended to the log or, where the log already holds
// events at those positions (a crashed run's re-executed steps, `replay --verify`), compared with
// them. So a resumed run never appends a step twice and replay checks exactly what training wrote.
import { step as machineStep, stateName, toPlain, type PlainSnapshot, type TrainingSnapshot } from '../../machines/fold.js';
import type { TrainingEvent } from '../../machines/training.events.js';
import { canonicalRecordData, encodeRecord, sameFacts, SCHEMA_VERSION, type LogRecord, type NewRecord, type RunCreated } from '../log/events.js';
import type { EventLog } from '../storage/types.js';
import { summarizeRun, type SummaryBase } from './summary.js';

/** Records a process writes that are not facts of the computation: skipped when comparing. */
const NON_DETERMINISTIC = new Set(['process.attached', 'run.forced']);
/** Facts that come from outside the computation (a person, a signal): taken from the log when re-executing. */
const EXTERNAL_INPUTS = new Set(['stop.requested', 'run.resumed', 'export.finished', 'run.extended']);

export class DivergenceError extends Error {
  override name = 'DivergenceError';
  constructor(
    readonly runId: string,
    readonly seq: number,
    readonly step: number,
    readonly expected: { type: string; data: unknown },
    readonly actual: { type: string; data: unknown },
  ) {
    super(
      `run ${runId}: re-execution diverged from the log at event ${seq} (step ${step}): ` +
        `logged ${expected.type} ${short(expected)}, computed ${actual.type} ${short(actual)}`,
    );
  }
}

function short(record: { type: string; data: unknown }): string {
  const text = canonicalRecordData(record);
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

export interface EmitterOptions {
  runId: string;
  /** Null when only verifying (replay): nothing is ever written. */
  log: EventLog | null;
  /** Records already in the log at the positions about to be produced, in order. */
  expected: LogRecord[];
  nextSeq: number;
  snapshot: TrainingSnapshot;
  onRecord?: (record: LogRecord) => void;
  /** The run's creation record (for the summary stored with each commit, summary.ts); taken from
   * the run.created this emitter writes when it writes one. */
  created?: { data: RunCreated; at: string };
}

export class Emitter {
  snapshot: TrainingSnapshot;
  nextSeq: number;
  private readonly expected: LogRecord[];
  private cursor = 0;
  /** Records waiting for the first real append (a resumed process's attach record goes after the
   * events it re-verified, not in the middle of them). */
  private pendingWrites: NewRecord[] = [];
  verified = 0;
  private base: SummaryBase | null;
  /** The last event written and the machine after it: what the run's summary describes. */
  private written: { seq: number; at: string; snapshot: TrainingSnapshot } | null = null;

  constructor(private readonly options: EmitterOptions) {
    this.snapshot = options.snapshot;
    this.nextSeq = options.nextSeq;
    this.expected = options.expected;
    this.base = options.created ? { created: options.created.data, createdAt: options.created.at } : null;
    // The log stores the summary with each commit; it describes exactly the committed event or
    // nothing (the summarizer declines, and readers read the log).
    options.log?.setSummarizer((seq) => {
      const w = this.written;
      return this.base && w && w.seq === seq ? summarizeRun(this.base, w.snapshot, w.seq, w.at) : null;
    });
  }

  /** True while logged events remain to be checked. */
  get verifying(): boolean {
    this.skipNonDeterministic();
    return this.cursor < this.expected.length;
  }

  /** The next logged external input (a stop request), if that is what the log holds next. */
  peekExternalInput(): LogRecord | null {
    this.skipNonDeterministic();
    const next = this.expected[this.cursor];
    return next && EXTERNAL_INPUTS.has(next.type) ? next : null;
  }

  /** Queues a non-machine record to write once verification has passed the end of the log. */
  queueAfterVerification(record: NewRecord): void {
    this.pendingWrites.push(record);
  }

  /** Sends a machine event and records it with the transition it causes: the record logged is the
   * event itself (a checkpoint's carries its tensors and stored snapshot too). */
  async machine(event: TrainingEvent & NewRecord, opts: { sync: boolean }): Promise<LogRecord[]> {
    await this.writePendingIfPastLog();
    const { snapshot: next, accepted } = machineStep(this.snapshot, event);
    if (!accepted) {
      throw new Error(`internal: the machine in state ${stateName(this.snapshot)} does not accept ${event.type}`);
    }
    const from = stateName(this.snapshot);
    const to = stateName(next);
    const records: NewRecord[] = [event];
    if (from !== to) {
      records.push({ type: 'state.changed', data: { from, to, cause: this.nextSeq, causeType: event.type } });
    }
    // Entering or leaving a stopped run is committed at once: a stored summary that says a run
    // stopped is then never behind a log that has gone on (summary.ts, summaryIsCurrent).
    const settled = (s: string) => s === 'stopped' || s === 'exported';
    const written = await this.emit(records, { sync: opts.sync || settled(to) || settled(from) }, next);
    this.snapshot = next;
    return written;
  }

  /** Records a fact the machine does not consume (a weight snapshot). */
  async fact(record: NewRecord, opts: { sync: boolean }): Promise<LogRecord[]> {
    await this.writePendingIfPastLog();
    return this.emit([record], opts);
  }

  /** Once verification has passed the end of the log, queued records go first, so that the seqs
   * the next records are numbered with (a transition's `cause`) are the ones they get. */
  private async writePendingIfPastLog(): Promise<void> {
    if (this.pendingWrites.length === 0 || this.verifying || !this.options.log) return;
    const batch = this.pendingWrites;
    this.pendingWrites = [];
    await this.write(batch, { sync: false });
  }

  /** The machine snapshot a checkpoint record stores: the state after its own event. */
  plainAfter(event: TrainingEvent): PlainSnapshot {
    return toPlain(machineStep(this.snapshot, event).snapshot);
  }

  private skipNonDeterministic(): void {
    while (this.cursor < this.expected.length && NON_DETERMINISTIC.has(this.expected[this.cursor]!.type)) {
      this.cursor += 1;
      this.nextSeq += 1;
    }
  }

  private async emit(records: NewRecord[], opts: { sync: boolean }, after: TrainingSnapshot = this.snapshot): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    const toWrite: NewRecord[] = [];
    for (const record of records) {
      this.skipNonDeterministic();
      const logged = this.expected[this.cursor];
      if (logged && toWrite.length === 0) {
        if (!sameFacts(logged, record)) {
          const loggedStep = logged.type === 'step.finished' ? logged.data.step : null;
          const stepOf = loggedStep ?? this.snapshot.context.step;
          throw new DivergenceError(this.options.runId, logged.seq, stepOf, logged, record);
        }
        this.cursor += 1;
        this.nextSeq += 1;
        this.verified += 1;
        out.push(logged);
        this.options.onRecord?.(logged);
        continue;
      }
      toWrite.push(record);
    }
    if (toWrite.length === 0) return out;
    if (!this.options.log) {
      throw new EndOfLogError(this.nextSeq);
    }
    out.push(...(await this.write(toWrite, opts, after)));
    return out;
  }

  private async write(batch: NewRecord[], opts: { sync: boolean }, after: TrainingSnapshot = this.snapshot): Promise<LogRecord[]> {
    // The time is given to the log, so listeners see the `at` the log stores (a TensorBoard file
    // written live equals one written later from the log).
    const at = new Date().toISOString();
    // run.created is event 0: the summary's creation facts (no search on the per-step path).
    const first = batch[0]!;
    if (this.nextSeq === 0 && first.type === 'run.created') this.base = { created: first.data, createdAt: at };
    this.written = { seq: this.nextSeq + batch.length - 1, at, snapshot: after };
    const seqs = await this.options.log!.append(batch.map((r) => ({ ...encodeRecord(r), at })), { sync: opts.sync });
    return batch.map((r, i) => {
      const rec = { v: SCHEMA_VERSION, seq: seqs[i]!, at, ...r } as LogRecord;
      if (rec.seq !== this.nextSeq) throw new Error(`internal: run ${this.options.runId} appended event ${rec.seq}, expected ${this.nextSeq}`);
      this.nextSeq = rec.seq + 1;
      this.options.onRecord?.(rec);
      return rec;
    });
  }
}

/** Verification reached the end of the log (replay has nothing more to compare). */
export class EndOfLogError extends Error {
  override name = 'EndOfLogError';
  constructor(readonly seq: number) {
    super(`end of log at event ${seq}`);
  }
}
