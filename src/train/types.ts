// Contracts between the training side (tfjs, data) and the run driver. The driver never touches
// tfjs directly: it asks a TrainingSession to step, evaluate, capture and restore, and logs facts.
import type * as tfTypes from '@tensorflow/tfjs';

export type Tf = typeof tfTypes;

/** One split of a data set, kept as typed arrays: on wasm a batch built from a typed-array copy is
 * ~30x faster than slicing a big tensor. Row i's features are x[i*F .. (i+1)*F), F = product(inputShape). */
export interface Split {
  readonly size: number;
  readonly x: Float32Array;
  /** Class index per example, 0 <= y[i] < numClasses. */
  readonly y: Int32Array;
}

export interface Dataset {
  /** How the user named it: 'mnist', 'iris', 'csv:PATH', or a library caller's name. */
  readonly name: string;
  /** Shape of one example, e.g. [28, 28, 1] for MNIST, [4] for iris. */
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly classNames: string[];
  /** The feature columns' names in input order (a CSV's header without the label column, iris's
   * four measurements), or null where features have no names (MNIST's pixels). Exported models
   * record them next to the class names, so a consumer feeds columns in the trained order. */
  readonly featureNames?: string[] | null;
  readonly train: Split;
  readonly val: Split;
  /** SHA-256 (hex) over inputShape, class names, and both splits' bytes: resume refuses a different one. */
  readonly fingerprint: string;
}

export type BackendName = 'wasm' | 'cpu' | 'tensorflow';
export type BackendRequest = 'auto' | BackendName;

export interface BackendInfo {
  readonly name: BackendName;
  /** Version of the backend package (tfjs-backend-wasm, tfjs-backend-cpu, tfjs-node). */
  readonly version: string;
  readonly tfjsVersion: string;
  /** Threads the backend computes with (1 for cpu and single-threaded wasm). */
  readonly threads: number;
}

/** A tensor's bytes plus what is needed to rebuild it. bytes is the little-endian raw buffer. */
export interface TensorBytes {
  readonly name: string;
  readonly shape: number[];
  readonly dtype: 'float32' | 'int32';
  readonly bytes: Uint8Array;
}

/** Everything needed to continue training bit-exactly, except the data cursor and the random
 * streams, which are pure functions of (seed, examplesSeen, step) recorded by the driver. */
export interface TrainerState {
  /** All model weights in canonical order (model.layers in order, each layer's weights in order). */
  readonly weights: TensorBytes[];
  /** Every piece of optimizer state, including what getWeights() omits (Adam's accBeta1/2). */
  readonly optimizer: TensorBytes[];
}

export interface StepResult {
  /** The batch loss as the exact float32 value. */
  readonly loss: number;
}

export interface EvalResult {
  readonly valLoss: number;
  readonly valAccuracy: number;
}
