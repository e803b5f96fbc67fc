// Picks and initialises the tfjs backend once per process. 'auto' prefers tfjs-node (native
// TensorFlow) when it can be loaded and falls back to wasm; tfjs-node is an optional dependency
// and is only ever loaded through a dynamic import whose failure is expected.
import { createRequire } from 'node:module';
import * as tfjs from '@tensorflow/tfjs';
import type { BackendInfo, BackendName, BackendRequest, Tf } from './types.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

/** The requested backend cannot be used. The message is one line. */
export class BackendError extends Error {
  override name = 'BackendError';
}

interface Active {
  readonly tf: Tf;
  readonly info: BackendInfo;
}

const require = createRequire(import.meta.url);
const TFJS_NODE = '@tensorflow/tfjs-node';
const WASM = '@tensorflow/tfjs-backend-wasm';

let active: Active | null = null;
let pending: Promise<Active> | null = null;
let tfjsNodeProbe: Promise<Tf | Error> | null = null;
let wasmModule: Promise<typeof import('@tensorflow/tfjs-backend-wasm')> | null = null;

/** Process-wide listeners the emscripten loader of tfjs-backend-wasm installs while it starts:
 * `uncaughtException` and `unhandledRejection` handlers that rethrow, so a caller's own rejected
 * promise (a retrace error it did not catch) surfaced as an uncaught exception printed from inside
 * the wasm glue code (exit 7), not as the caller's error. A library must not change how its
 * caller's process handles errors: whatever the loader adds is removed again. */
type ProcessErrorEvent = 'uncaughtException' | 'unhandledRejection';
const PROCESS_ERROR_EVENTS: ProcessErrorEvent[] = ['uncaughtException', 'unhandledRejection'];

function processErrorListeners(): Map<ProcessErrorEvent, Set<Function>> {
  return new Map(PROCESS_ERROR_EVENTS.map((e) => [e, new Set<Function>((process as NodeJS.EventEmitter).listeners(e))]));
}

function removeListenersAddedSince(before: Map<ProcessErrorEvent, Set<Function>>): void {
  for (const event of PROCESS_ERROR_EVENTS) {
    for (const listener of (process as NodeJS.EventEmitter).listeners(event)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n').find((line) => line.trim() !== '') ?? text).trim();
}

/** Loads tfjs-node once; resolves to the module or to the loading error. */
function probeTfjsNode(): Promise<Tf | Error> {
  tfjsNodeProbe ??= (async () => {
    try {
      // A variable specifier keeps TypeScript from requiring the optional package's types.
      const specifier: string = TFJS_NODE;
      const mod = (await import(specifier)) as { default?: unknown } & Record<string, unknown>;
      const tf = (typeof mod.setBackend === 'function' ? mod : mod.default) as Tf | undefined;
      if (!tf || typeof tf.setBackend !== 'function') return new Error(`${TFJS_NODE} loaded but exports no tfjs API`);
      return tf;
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  })();
  return tfjsNodeProbe;
}

function packageVersion(name: string, fromTf?: string): string {
  const attempts: Array<() => string> = [
    () => require.resolve(`${name}/package.json`),
    // A backend installed as a dependency of @tensorflow/tfjs rather than of ours.
    () => createRequire(require.resolve('@tensorflow/tfjs')).resolve(`${name}/package.json`),
  ];
  for (const attempt of attempts) {
    try {
      const pkg = require(attempt()) as { version?: unknown };
      if (typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location
    }
  }
  return fromTf ?? 'unknown';
}

async function activate(name: BackendName, tfNode: Tf | null): Promise<Active> {
  let tf: Tf;
  let threads = 1;
  let version: string;
  if (name === 'tensorflow') {
    if (!tfNode) throw new BackendError('backend "tensorflow" requires @tensorflow/tfjs-node');
    tf = tfNode;
    if (!(await tf.setBackend('tensorflow'))) throw new BackendError('backend "tensorflow" failed to initialise');
    version = packageVersion(TFJS_NODE);
    // Native TensorFlow runs with its own intra-op thread pool.
    threads = Math.max(1, Number(process.env.TF_NUM_INTRAOP_THREADS) || (await import('node:os')).availableParallelism());
  } else if (name === 'wasm') {
    tf = tfjs;
    let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
    let ok: boolean;
    const listenersBefore = processErrorListeners();
    try {
      try {
        wasmModule ??= import(WASM);
        wasm = await wasmModule;
      } catch (error) {
        wasmModule = null;
        throw new BackendError(`backend "wasm" could not be loaded: ${firstLine(error)}`);
      }
      try {
        ok = await tf.setBackend('wasm');
      } catch (error) {
        throw new BackendError(`backend "wasm" failed to initialise: ${firstLine(error)}`);
      }
    } finally {
      removeListenersAddedSince(listenersBefore);
    }
    if (!ok) throw new BackendError('backend "wasm" failed to initialise');
    registerWasmTrainingKernels(tf);
    version = packageVersion(WASM, (wasm as { version_wasm?: string }).version_wasm);
    // Node never gets the threaded binary (WASM_HAS_MULTITHREAD_SUPPORT is false under IS_NODE).
    const multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    if (multithread) {
      try {
        threads = wasm.getThreadsCount();
      } catch {
        threads = 1;
      }
    }
  } else {
    tf = tfjs;
    if (!(await tf.setBackend('cpu'))) throw new BackendError('backend "cpu" failed to initialise');
    version = packageVersion('@tensorflow/tfjs-backend-cpu', (tf.version as Record<string, string>)['tfjs-backend-cpu']);
  }
  await tf.ready();
  const tfjsVersion = (tf.version as Record<string, string>)['tfjs'] ?? packageVersion('@tensorflow/tfjs');
  return { tf, info: { name, version, tfjsVersion, threads } };
}

async function resolve(request: BackendRequest): Promise<Active> {
  let name: BackendName;
  let tfNode: Tf | null = null;
  if (request === 'auto' || request === 'tensorflow') {
    const probe = await probeTfjsNode();
    if (probe instanceof Error) {
      if (request === 'tensorflow') {
        throw new BackendError(`backend "tensorflow" needs @tensorflow/tfjs-node, which could not be loaded: ${firstLine(probe)}`);
      }
      name = 'wasm';
    } else {
      name = 'tensorflow';
      tfNode = probe;
    }
  } else if (request === 'wasm' || request === 'cpu') {
    name = request;
  } else {
    throw new BackendError(`unknown backend "${String(request)}"; use auto, wasm, cpu or tensorflow`);
  }
  if (active && active.info.name === name && active.tf.getBackend() === name) return active;
  active = await activate(name, tfNode);
  return active;
}

/**
 * Initialises the requested backend ('auto' = tfjs-node where loadable, else wasm) and reports
 * what runs. Cheap when the same backend is already active; switches with tf.setBackend otherwise.
 */
export async function initBackend(request: BackendRequest): Promise<{ tf: Tf; info: BackendInfo }> {
  // Serialise concurrent calls: two setBackend calls racing would leave either one active.
  const previous: Promise<unknown> = pending ?? Promise.resolve();
  const next = previous.then(
    () => resolve(request),
    () => resolve(request),
  );
  pending = next;
  try {
    const result = await next;
    return { tf: result.tf, info: result.info };
  } finally {
    if (pending === next) pending = null;
  }
}
