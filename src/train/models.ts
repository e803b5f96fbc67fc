// Model construction: the built-in 'mlp' and 'cnn', a user's module ('module:PATH'), or a saved
// model folder (initFrom). Construction runs with Math.random replaced by the seeded stream
// (seed, 'init'), so unseeded initializers give the same weights in every process.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadModelFromDir } from './model-io.js';
import { patchMathRandom } from './random.js';
import type { Tf } from './types.js';

/** The model cannot be built or does not fit the data. The message is one line. */
export class ModelError extends Error {
  override name = 'ModelError';
}

/** What a model module's default export (or a library caller's factory) receives. */
export interface ModelFactoryArgs {
  readonly tf: Tf;
  readonly inputShape: number[];
  readonly numClasses: number;
}

export type ModelFactory = (args: ModelFactoryArgs) => tfTypes.LayersModel | Promise<tfTypes.LayersModel>;

export interface BuildModelOptions {
  readonly tf: Tf;
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly seed: number;
  /** Base for relative module paths; defaults to process.cwd(). */
  readonly cwd?: string;
}

export interface BuiltModel {
  readonly model: tfTypes.LayersModel;
  /** SHA-256 (hex) of the module file's bytes for module:PATH models, else null. */
  readonly sourceHash: string | null;
  /**
   * False when the factory was async: only its synchronous part ran under the seeded Math.random,
   * so its initial weights may differ between processes. Runs stay exact anyway because the
   * driver snapshots the initial weights.
   */
  readonly deterministicInit: boolean;
}

/** Thrown, in place of ending the process, when a model module calls process.exit. */
class ModuleExitError extends ModelError {}

/**
 * Runs a model module's code (its evaluation and its factory) as retrace's guest:
 * - `process.exit` throws a ModelError instead of ending the process (which gave exit 0 and an
 *   empty --json output);
 * - no SIGINT/SIGTERM listener is installed meanwhile, so Ctrl-C ends the process at once even if
 *   the module spins forever: while JavaScript loops, no JavaScript handler can run, and a listener
 *   would turn the signal into nothing. Nothing is lost: no run exists yet, or (resume, replay) the
 *   run is as a SIGKILL would leave it. The listeners (the CLI's graceful stop) come back after.
 */
async function asGuest<T>(origin: string, fn: () => Promise<T>): Promise<T> {
  const exit = process.exit;
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const saved = signals.map((name) => [name, process.listeners(name)] as const);
  for (const name of signals) process.removeAllListeners(name);
  process.exit = ((code?: number | string | null) => {
    throw new ModuleExitError(`${origin} called process.exit(${code ?? ''}); a model module must return a model, not end the process`);
  }) as typeof process.exit;
  try {
    return await fn();
  } finally {
    process.exit = exit;
    for (const [name, listeners] of saved) for (const l of listeners) process.on(name, l as NodeJS.SignalsListener);
  }
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

function shapeText(shape: ReadonlyArray<number | null>): string {
  return `[${shape.map((d) => (d == null ? 'null' : String(d))).join(',')}]`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
    return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
  }
  return `a ${typeof value}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function mlp(tf: Tf, inputShape: number[], numClasses: number): tfTypes.LayersModel {
  const layers: tfTypes.layers.Layer[] = [];
  if (inputShape.length > 1) layers.push(tf.layers.flatten({ inputShape, name: 'flatten' }));
  layers.push(
    tf.layers.dense({ units: 128, activation: 'relu', name: 'dense_hidden', ...(inputShape.length > 1 ? {} : { inputShape }) }),
    // Unseeded on purpose: determinism comes from the seeded Math.random stream of each step.
    tf.layers.dropout({ rate: 0.2, name: 'dropout' }),
    tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'dense_out' }),
  );
  return tf.sequential({ layers, name: 'mlp' });
}

function cnn(tf: Tf, inputShape: number[], numClasses: number): tfTypes.LayersModel {
  if (inputShape.length !== 3) {
    throw new ModelError(
      `model "cnn" needs image examples of shape [height, width, channels], but this dataset's examples have shape ${shapeText(inputShape)}; use "mlp" or a module:PATH model`,
    );
  }
  const [h, w] = inputShape as [number, number, number];
  const after = (n: number): number => Math.floor((Math.floor((n - 2) / 2) - 2) / 2);
  if (after(h) < 1 || after(w) < 1) {
    throw new ModelError(`model "cnn" needs images of at least 10x10, this dataset's are ${h}x${w}`);
  }
  return tf.sequential({
    name: 'cnn',
    layers: [
      tf.layers.conv2d({ inputShape, filters: 8, kernelSize: 3, activation: 'relu', name: 'conv1' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', name: 'conv2' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 64, activation: 'relu', name: 'dense_hidden' }),
      tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'dense_out' }),
    ],
  });
}

/** Checks a model fits the data: one input [null, ...inputShape], one output [null, numClasses]. */
export function validateModel(tf: Tf, value: unknown, inputShape: number[], numClasses: number, origin: string): tfTypes.LayersModel {
  if (!(value instanceof tf.LayersModel)) {
    const looksLikeModel =
      typeof value === 'object' && value !== null && typeof (value as { apply?: unknown }).apply === 'function' && Array.isArray((value as { layers?: unknown }).layers);
    throw new ModelError(
      looksLikeModel
        ? `${origin} returned a model built with another copy of @tensorflow/tfjs than retrace's: build it with the tf passed to the factory, and dedupe the install (\`npm ls @tensorflow/tfjs\` lists the copies, \`npm dedupe\` merges them)`
        : `${origin} must return a tf.LayersModel (tf.sequential or tf.model), got ${describeValue(value)}`,
    );
  }
  const model = value;
  const inputs = model.inputs ?? [];
  const outputs = model.outputs ?? [];
  const wantIn = [null, ...inputShape];
  if (inputs.length !== 1) throw new ModelError(`${origin}: the model must have exactly one input, it has ${inputs.length}`);
  const gotIn = inputs[0]!.shape;
  if (gotIn.length !== wantIn.length || gotIn.some((d, i) => d !== wantIn[i])) {
    throw new ModelError(`${origin}: model input shape ${shapeText(gotIn)} does not match the data's ${shapeText(wantIn)}`);
  }
  if (outputs.length !== 1) throw new ModelError(`${origin}: the model must have exactly one output, it has ${outputs.length}`);
  const gotOut = outputs[0]!.shape;
  if (gotOut.length !== 2 || gotOut[0] != null || gotOut[1] !== numClasses) {
    throw new ModelError(`${origin}: model output shape ${shapeText(gotOut)} must be [null,${numClasses}] (one probability per class)`);
  }
  return model;
}

/** Runs a factory with the seeded init stream and validates what it returns. */
export async function buildFromFactory(factory: ModelFactory, options: BuildModelOptions, origin: string): Promise<BuiltModel> {
  const { tf, inputShape, numClasses, seed } = options;
  let result: unknown;
  let deterministicInit = true;
  const restore = patchMathRandom(seed, ['init']);
  try {
    result = factory({ tf, inputShape: inputShape.slice(), numClasses });
  } catch (error) {
    if (error instanceof ModuleExitError) throw error;
    throw new ModelError(`${origin} threw: ${oneLine(error)}`);
  } finally {
    restore();
  }
  if (isThenable(result)) {
    // Only the synchronous part ran under the seeded stream; the initial weights snapshot taken
    // by the driver is what makes runs of such models exact.
    deterministicInit = false;
    try {
      result = await result;
    } catch (error) {
      if (error instanceof ModuleExitError) throw error;
      throw new ModelError(`${origin} threw: ${oneLine(error)}`);
    }
  }
  try {
    return { model: validateModel(tf, result, inputShape, numClasses, origin), sourceHash: null, deterministicInit };
  } catch (error) {
    if (result instanceof tf.LayersModel) result.dispose();
    throw error;
  }
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);

async function importModule(path: string, sourceHash: string): Promise<Record<string, unknown>> {
  if (TS_EXTENSIONS.has(extname(path))) {
    let tsImport: (specifier: string, options: string | { parentURL: string }) => Promise<unknown>;
    try {
      ({ tsImport } = (await import('tsx/esm/api')) as { tsImport: typeof tsImport });
    } catch {
      throw new ModelError(`model module ${path} is TypeScript, which needs the "tsx" package; install it or compile the module to JavaScript`);
    }
    return (await tsImport(pathToFileURL(path).href, { parentURL: import.meta.url })) as Record<string, unknown>;
  }
  // The query makes an edited file load afresh instead of from the module cache.
  return (await import(`${pathToFileURL(path).href}?sha256=${sourceHash.slice(0, 16)}`)) as Record<string, unknown>;
}

async function buildModuleModel(path: string, spec: string, options: BuildModelOptions): Promise<BuiltModel> {
  const absolute = isAbsolute(path) ? path : resolve(options.cwd ?? process.cwd(), path);
  let bytes: Buffer;
  try {
    if (!(await stat(absolute)).isFile()) throw new Error('not a file');
    bytes = await readFile(absolute);
  } catch {
    throw new ModelError(`model module not found: ${absolute} (from "${spec}")`);
  }
  const sourceHash = createHash('sha256').update(bytes).digest('hex');
  return asGuest(`model module ${absolute}`, () => evaluateModuleModel(absolute, sourceHash, options));
}

async function evaluateModuleModel(absolute: string, sourceHash: string, options: BuildModelOptions): Promise<BuiltModel> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(absolute, sourceHash);
  } catch (error) {
    if (error instanceof ModelError) throw error;
    throw new ModelError(`model module ${absolute} failed to load: ${oneLine(error)}`);
  }
  let factory = mod.default;
  // A CommonJS module loaded through tsx may nest its export one level deeper.
  if (typeof factory === 'object' && factory !== null && typeof (factory as { default?: unknown }).default === 'function') {
    factory = (factory as { default: unknown }).default;
  }
  if (typeof factory !== 'function') {
    throw new ModelError(
      `model module ${absolute} has no default export function; write: export default ({ tf, inputShape, numClasses }) => tf.sequential({...})`,
    );
  }
  const built = await buildFromFactory(factory as ModelFactory, options, `model module ${absolute}`);
  return { ...built, sourceHash };
}

/**
 * Builds the model named by `spec` ('mlp', 'cnn' or 'module:PATH') under the seeded init stream.
 * Throws ModelError (one line) when it cannot be built or does not fit the data.
 */
export async function buildModel(spec: string, options: BuildModelOptions): Promise<BuiltModel> {
  const { tf, inputShape, numClasses, seed } = options;
  if (!Array.isArray(inputShape) || inputShape.length === 0 || inputShape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new ModelError(`invalid input shape ${JSON.stringify(inputShape)}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 2) throw new ModelError(`a classifier needs at least 2 classes, got ${numClasses}`);
  if (spec === 'mlp' || spec === 'cnn') {
    const restore = patchMathRandom(seed, ['init']);
    let model: tfTypes.LayersModel;
    try {
      model = spec === 'mlp' ? mlp(tf, inputShape, numClasses) : cnn(tf, inputShape, numClasses);
    } finally {
      restore();
    }
    return { model, sourceHash: null, deterministicInit: true };
  }
  if (spec.startsWith('module:')) {
    const path = spec.slice('module:'.length);
    if (path === '') throw new ModelError('model "module:" needs a path, e.g. module:./my-model.js');
    return buildModuleModel(path, spec, options);
  }
  throw new ModelError(`unknown model "${spec}"; use mlp, cnn or module:PATH`);
}

/**
 * Loads an initial model (topology and weights) from a TF.js Layers model folder, ours or stock,
 * and checks it fits the data.
 */
export async function loadInitModel(
  tf: Tf,
  dir: string,
  options: { inputShape: number[]; numClasses: number; cwd?: string },
): Promise<BuiltModel> {
  const absolute = isAbsolute(dir) ? dir : resolve(options.cwd ?? process.cwd(), dir);
  let model: tfTypes.LayersModel;
  try {
    model = await loadModelFromDir(tf, absolute);
  } catch (error) {
    throw new ModelError(`initFrom: ${oneLine(error)}`);
  }
  try {
    validateModel(tf, model, options.inputShape, options.numClasses, `initFrom model ${absolute}`);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, sourceHash: null, deterministicInit: true };
}
