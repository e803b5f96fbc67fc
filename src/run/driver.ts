// The driver: does the work the machine's state calls for (a step, an evaluation, a checkpoint)
// and reports each result to the machine as one event through the Emitter. The same loop trains,
// resumes (re-verifying a crashed run's leftover steps) and replays (verifying only).
import { stateName } from '../../machines/fold.js';
import { isTrainingEvent, type TrainingEventOf } from '../../machines/training.events.js';
import { isCheckpointStep } from '../../machines/training.machine.js';
import type { BlobStore } from '../log/blobs.js';
import type { RunCreated } from '../log/events.js';
import type { TrainingSession } from '../train/session.js';
import { weightsHashOfBytes } from '../train/weights-hash.js';
import type { Emitter } from './emitter.js';
import { describeTensors, persistTensors, persistTrainerState } from './snapshots.js';

export interface DriveOptions {
  runId: string;
  created: RunCreated;
  session: TrainingSession;
  emitter: Emitter;
  /** Null when verifying only (replay): tensors are hashed, never written. */
  blobs: BlobStore | null;
  signal?: AbortSignal;
  /** Stop once this many steps are done (replay --to step:N). */
  stopAtStep?: number;
  /** Replay: stop when the logged events are all verified. */
  stopAtEndOfLog?: boolean;
}

/** Absolute offsets of a run's streams: a branch continues its parent's data cursor and step keys. */
function absolute(created: RunCreated, step: number, examplesSeen: number) {
  return { step: created.origin.step + step, examplesSeen: created.origin.examplesSeen + examplesSeen };
}

export async function drive(opts: DriveOptions): Promise<void> {
  const { emitter, session, created } = opts;
  const settings = created.settings;
  const snapshotEvery = created.config.snapshotEvery;

  let lastYield = Date.now();
  for (;;) {
    // Buffered appends resolve as microtasks, which never let the event loop run: yield now and
    // then so signals (Ctrl-C), timers and a server in the same process are served. Wall-clock
    // time decides only when, never what is computed.
    if (Date.now() - lastYield > 50) {
      await new Promise((resolve) => setImmediate(resolve));
      lastYield = Date.now();
    }
    if (opts.stopAtEndOfLog && !emitter.verifying) return;
    const ctx = emitter.snapshot.context;
    const state = stateName(emitter.snapshot);
    if (opts.stopAtStep !== undefined && ctx.step >= opts.stopAtStep) return;

    // A logged outside input (a stop request, a resume, an export) is replayed as it happened.
    const external = emitter.peekExternalInput();
    if (external && isTrainingEvent(external) && emitter.snapshot.can(external)) {
      await emitter.machine(external, { sync: false });
      continue;
    }

    switch (state) {
      case 'idle':
        await evaluate(opts);
        await commitCheckpoint(opts, 'initial', 0);
        break;
      case 'warmup':
      case 'training':
      case 'plateau':
        if (opts.signal?.aborted && !emitter.verifying) {
          const source = opts.signal.reason === 'signal' ? 'signal' : 'api';
          await emitter.machine({ type: 'stop.requested', data: { source } }, { sync: false });
          break;
        }
        await trainOneStep(opts, snapshotEvery, settings.batchSize);
        break;
      case 'checkpointing':
        if (ctx.interruptedFrom !== null) {
          // Rules 2 number interrupt checkpoints apart (int:N); rules 1 repeated the last epoch index.
          await commitCheckpoint(opts, 'interrupt', ctx.interrupts !== undefined ? ctx.interrupts + 1 : ctx.epochCheckpoints);
        } else {
          await evaluate(opts);
          await commitCheckpoint(opts, 'epoch', ctx.epochCheckpoints + 1);
        }
        break;
      case 'stopped':
        // A diverged run's last weights are not a checkpoint; snapshot them so its summary and
        // replay have them (they are the evidence of what went wrong).
        if (ctx.stopReason === 'diverged' && canRecordFinalSnapshot(opts)) await snapshotWeights(opts);
        return;
      case 'exported':
        return;
      default: {
        const exhaustive: never = state;
        throw new Error(`internal: unknown state ${String(exhaustive)}`);
      }
    }
  }
}

async function trainOneStep(opts: DriveOptions, snapshotEvery: number, batchSize: number) {
  const { emitter, session, created } = opts;
  const ctx = emitter.snapshot.context;
  const abs = absolute(created, ctx.step, ctx.examplesSeen);
  const lr = ctx.lr;
  const { loss } = session.step(abs.step, abs.examplesSeen, lr);
  const step = ctx.step + 1;
  const examplesSeen = ctx.examplesSeen + batchSize;
  const boundary = isCheckpointStep(ctx, step);
  const event: TrainingEventOf<'step.finished'> = { type: 'step.finished', data: { step, loss, lr, examplesSeen } };
  if (boundary) event.data.weightsFinite = session.weightsFinite();
  await emitter.machine(event, { sync: false });
  if (snapshotEvery > 0 && step % snapshotEvery === 0 && !boundary && stateName(emitter.snapshot) !== 'stopped') {
    await snapshotWeights(opts);
  }
}

async function evaluate(opts: DriveOptions) {
  const { emitter, session } = opts;
  const step = emitter.snapshot.context.step;
  const r = session.evaluate();
  await emitter.machine({ type: 'eval.finished', data: { step, valLoss: r.valLoss, valAccuracy: r.valAccuracy } }, { sync: false });
}

async function commitCheckpoint(opts: DriveOptions, kind: 'initial' | 'epoch' | 'interrupt', index: number) {
  const { emitter, session, blobs } = opts;
  const ctx = emitter.snapshot.context;
  const state = session.capture();
  // Blobs are durable before the event naming them is appended; the intent keeps any gc from
  // deleting them until the event is durable (a failed append keeps it: see blob-intents.ts).
  const intent = blobs?.intent(opts.runId);
  const { weightsHash, weights, optimizer } = blobs
    ? await persistTrainerState(blobs, state, intent)
    : { weightsHash: weightsHashOfBytes(state.weights.map((w) => w.bytes)), weights: describeTensors(state.weights), optimizer: describeTensors(state.optimizer) };
  const event: TrainingEventOf<'checkpoint.committed'> = { type: 'checkpoint.committed', data: { kind, index, step: ctx.step, weightsHash } };
  // The record is the machine event with the tensors and the snapshot it leads to added.
  const data = { ...event.data, examplesSeen: ctx.examplesSeen, weights, optimizer, optimizerKind: opts.created.optimizer, machine: emitter.plainAfter(event) };
  await emitter.machine({ type: 'checkpoint.committed', data }, { sync: true });
  await intent?.release();
}

async function snapshotWeights(opts: DriveOptions) {
  const { emitter, session, blobs } = opts;
  const state = session.capture();
  const intent = blobs?.intent(opts.runId);
  const weights = blobs ? await persistTensors(blobs, state.weights, intent) : describeTensors(state.weights);
  await emitter.fact(
    { type: 'snapshot.taken', data: { step: emitter.snapshot.context.step, weightsHash: weightsHashOfBytes(state.weights.map((w) => w.bytes)), weights } },
    { sync: true },
  );
  await intent?.release();
}

/** Live runs write the snapshot; replay compares it while the log still holds one. */
function canRecordFinalSnapshot(opts: DriveOptions): boolean {
  return opts.emitter.verifying || opts.blobs !== null;
}
