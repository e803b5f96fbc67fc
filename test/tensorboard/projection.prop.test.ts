// The projection under any history of crashes and resumes: synthetic logs shaped like the driver
// writes them (steps, an evaluation and a checkpoint every few steps, SIGKILLs that lose the
// buffered steps after the last checkpoint or keep some of them, resumes that re-verify what was
// kept and then append their process.attached), encoded for real and read back with the
// hand-written reader. Both the one-shot export and the files that `--tensorboard` writers in each
// process would leave must show, under TensorBoard's START rule, exactly the log's scalars.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { storedFloat, type TrainingSettings } from '../../machines/training.events.js';
import { encodeStoredSnapshot, parseRecord, type LogRecord } from '../../src/log/events.js';
import { startMachine, toPlain } from '../../machines/fold.js';
import { encodeEvents } from '../../src/tensorboard/event-file.js';
import { RunProjection } from '../../src/tensorboard/projection.js';
import type { TbEvent } from '../../src/tensorboard/proto.js';
import { runEventFile } from '../../src/tensorboard/write.js';
import { expectedScalars } from './helpers.js';
import { decodeFiles, tensorboardView } from './wire.js';

const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/tensorboard/crash-resume.ndjson');
const created = JSON.parse(readFileSync(FIXTURE, 'utf8').split('\n')[0]!);
const HASH = '0'.repeat(64);

interface Crash {
  /** Steps this process computes before it is killed. */
  steps: number;
  /** Records after the last checkpoint that reached the log anyway (the rest were buffered). */
  kept: number;
}

/** A valid stored machine snapshot (the projection never reads it; the schema validates it). */
function storedSnapshot(settings: TrainingSettings): unknown {
  return encodeStoredSnapshot({ ...toPlain(startMachine(settings)), value: 'training' });
}

function simulate(totalSteps: number, every: number, origin: number, crashes: Crash[], nanAt: number) {
  const log: LogRecord[] = [];
  const add = (type: string, data: unknown) => {
    const seq = log.length;
    log.push(parseRecord('p', { v: 1, seq, type, at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(), data }));
    return log[seq]!;
  };
  const attach = (fromSeq: number | null) =>
    add('process.attached', { pid: 100 + log.length, hostname: 'h', command: 'x', backend: { name: 'wasm', version: '1', tfjsVersion: '1', threads: 1 }, fromSeq, backendMismatch: null });
  const checkpoint = (step: number, index: number) => {
    add('eval.finished', { step, valLoss: storedFloat(1 / (step + 1)), valAccuracy: step / (step + 7) });
    add('checkpoint.committed', { kind: index === 0 ? 'initial' : 'epoch', index, step, weightsHash: HASH, examplesSeen: step * 8, weights: [], optimizer: [], optimizerKind: 'adam', machine: storedSnapshot(created.data.settings) });
  };
  const lastCheckpoint = () => [...log].reverse().find((r) => r.type === 'checkpoint.committed') as Extract<LogRecord, { type: 'checkpoint.committed' }>;
  const lastStep = () => ([...log].reverse().find((r) => r.type === 'step.finished')?.data as { step: number } | undefined)?.step ?? 0;

  // What each process's live writer hands TensorBoard: flushed at checkpoints, the rest lost at a kill.
  const liveFiles: TbEvent[][] = [];
  let writer: { projection: RunProjection; flushed: TbEvent[]; pending: TbEvent[] } | null = null;
  const seen = (r: LogRecord) => {
    if (!writer) return;
    writer.pending.push(...writer.projection.take(r));
    if (r.type === 'checkpoint.committed') {
      writer.flushed.push(...writer.pending);
      writer.pending = [];
    }
  };

  add('run.created', { ...created.data, origin: { step: origin, examplesSeen: origin * 8 } });
  writer = { projection: new RunProjection(), flushed: [], pending: [] };
  seen(log[0]!);
  seen(attach(null));
  checkpoint(0, 0);
  seen(log.at(-2)!);
  seen(log.at(-1)!);

  let processIndex = 0;
  for (;;) {
    const crash = crashes[processIndex];
    let computed = 0;
    let attachPending = processIndex > 0;
    let killed = false;
    for (let step = lastStep() + 1; step <= totalSteps; step += 1) {
      if (crash && computed === crash.steps) {
        killed = true;
        break;
      }
      if (attachPending) {
        seen(attach(lastCheckpoint().seq));
        attachPending = false;
      }
      seen(add('step.finished', { step, loss: step === nanAt ? 'NaN' : storedFloat(Math.fround(Math.cos(step))), lr: 0.001 * (1 + (step % 3)), examplesSeen: step * 8 }));
      computed += 1;
      if (step % every === 0 || step === totalSteps) {
        const index = log.filter((r) => r.type === 'checkpoint.committed').length;
        checkpoint(step, index);
        seen(log.at(-2)!);
        seen(log.at(-1)!);
      }
    }
    liveFiles.push(killed ? writer!.flushed : [...writer!.flushed, ...writer!.pending]);
    if (!killed) break;
    // The kill: records after the last checkpoint beyond `kept` were still buffered and are gone.
    const ck = lastCheckpoint();
    log.length = Math.min(log.length, ck.seq + 1 + crash!.kept);
    // The resume: its writer starts from the log as it is, then sees the records it re-verifies
    // (never a process.attached: the driver skips those) and the ones it appends.
    processIndex += 1;
    const from = lastCheckpoint().seq + 1;
    writer = { projection: new RunProjection(), flushed: [], pending: [] };
    const header = writer.projection.beginResume(log.slice(0, from), 1e9 + processIndex);
    const reverified = log.slice(from).filter((r) => r.type !== 'process.attached');
    writer.pending.push(...header);
    for (const r of reverified) seen(r);
  }
  return { log, liveFiles: liveFiles.filter((f) => f.length > 0) };
}

describe('the TensorBoard projection under crashes and resumes', () => {
  it('export and live files both show each logged step and evaluation once, with its value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 0, max: 500 }),
        fc.array(fc.record({ steps: fc.integer({ min: 0, max: 15 }), kept: fc.integer({ min: 0, max: 30 }) }), { maxLength: 5 }),
        fc.integer({ min: 0, max: 45 }),
        (totalSteps, every, origin, crashes, nanAt) => {
          const { log, liveFiles } = simulate(totalSteps, every, origin, crashes, nanAt);
          const expected = expectedScalars(log);
          const exported = decodeFiles([new Uint8Array(runEventFile(log).bytes)]);
          expect(exported[0]!.fileVersion).toBe('brain.Event:2');
          expect(tensorboardView(exported)).toEqual(expected);
          const live = decodeFiles(liveFiles.map((events) => new Uint8Array(encodeEvents(events))));
          expect(tensorboardView(live)).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});
