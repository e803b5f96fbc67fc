// Realistic logs without tfjs: the real startRun → driver → emitter → RunLog path, driven by a fake
// training session whose losses, evaluations and weights are made up. Every record (run.created,
// process.attached, step.finished, state.changed, eval.finished, checkpoint.committed with its
// machine snapshot) is exactly what a real run writes; only the numbers are invented.
import { resolveConfig, type ConfigInput } from '../../src/config.js';
import type { Store } from '../../src/log/store.js';
import type { RecordListener, RunSummary } from '../../src/run/common.js';
import type { RunEnvironment } from '../../src/run/environment.js';
import { startRun } from '../../src/run/train.js';
import type { TrainingSession } from '../../src/train/session.js';
import type { BackendInfo, Dataset, TensorBytes } from '../../src/train/types.js';

const BACKEND: BackendInfo = { name: 'wasm', version: '4.22.0', tfjsVersion: '4.22.0', threads: 1 };

export interface SyntheticOptions {
  /** Steps between checkpoints (one virtual epoch). */
  stepsPerEpoch: number;
  /** Epoch checkpoints (the run's budget is stepsPerEpoch × checkpoints). */
  checkpoints: number;
  /** Bytes of the fake weight tensor; each checkpoint writes a new blob when `distinctWeights`. */
  weightBytes?: number;
  distinctWeights?: boolean;
  onRecord?: RecordListener;
  config?: ConfigInput;
}

function fakeDataset(): Dataset {
  const x = new Float32Array(4);
  const y = new Int32Array(1);
  return {
    name: 'synthetic',
    inputShape: [4],
    numClasses: 3,
    classNames: ['a', 'b', 'c'],
    train: { size: 1, x, y },
    val: { size: 1, x, y },
    fingerprint: '0'.repeat(64),
  };
}

/** A session that computes nothing: deterministic made-up losses and evaluations. */
export function fakeSession(opts: { weightBytes?: number; distinctWeights?: boolean } = {}): TrainingSession {
  const weights = new Uint8Array(opts.weightBytes ?? 64);
  let evals = 0;
  let captures = 0;
  const tensor = (name: string): TensorBytes => ({ name, shape: [weights.byteLength / 4], dtype: 'float32', bytes: weights });
  const session = {
    model: { layers: [] },
    topology: { class_name: 'Sequential', config: { name: 'synthetic', layers: [] } },
    variableNames: ['dense/kernel'],
    trainableVariableNames: ['dense/kernel'],
    sourceHash: null,
    deterministicInit: true,
    backend: BACKEND,
    optimizer: null,
    step(step: number): { loss: number } {
      // A noisy decreasing curve, as float32.
      return { loss: Math.fround(2 / (1 + step / 500) + 0.05 * Math.sin(step * 1.7)) };
    },
    evaluate() {
      evals++;
      // Improves, with a flat stretch now and then (so plateaus and lr reductions happen).
      const valLoss = evals % 7 === 0 ? 9 : 1 / (1 + evals / 3);
      return { valLoss, valAccuracy: Math.min(0.99, 0.5 + evals / 200) };
    },
    capture() {
      captures++;
      if (opts.distinctWeights) new DataView(weights.buffer).setUint32(0, captures, true);
      return { weights: [tensor('dense/kernel')], optimizer: [tensor('dense/kernel/m')] };
    },
    restore() {
      return { restored: true, reason: null, missingSlots: [], droppedSlots: [] };
    },
    weightsHash: () => 'f'.repeat(64),
    weightsFinite: () => true,
    dispose() {},
  };
  return session as unknown as TrainingSession;
}

/** Trains a synthetic run to its budget through the real driver and log. */
export async function syntheticRun(store: Store, runId: string, opts: SyntheticOptions): Promise<RunSummary> {
  const batchSize = 32;
  const config = resolveConfig({
    dataset: 'iris',
    model: 'mlp',
    backend: 'wasm',
    batchSize,
    checkpoints: opts.checkpoints,
    stopPoint: 1,
    trainingExamples: opts.stepsPerEpoch * opts.checkpoints * batchSize,
    // Every decrease counts as an improvement and the rate can always be halved again: the flat
    // stretches cause plateaus (and their transitions) without ever ending a run early.
    plateauPatience: 1,
    minDelta: 0,
    minLr: 1e-300,
    ...opts.config,
  });
  const env: RunEnvironment = {
    tf: null as never,
    backend: BACKEND,
    dataset: fakeDataset(),
    session: fakeSession(opts),
  };
  return startRun(store, { runId, config, env, parent: null, origin: { step: 0, examplesSeen: 0 }, onRecord: opts.onRecord, command: 'bench' });
}
