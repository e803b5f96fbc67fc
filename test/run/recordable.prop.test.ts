// The kind behind `--stop-point 1e17` (trained, committed, and then every read of the run failed on
// run.created): whatever the config validation accepts — resolveConfig for the CLI and the library,
// configParam for the dashboard's API — either creates a run whose every event reads back through
// the real reader, or is refused with a ConfigError before the run exists.
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, LIMITS, resolveConfig, type ConfigInput } from '../../src/config.js';
import * as retrace from '../../src/index.js';
import { checkBatchFits, floatsPerExample } from '../../src/train/limits.js';
import { configParam, HttpError } from '../../src/ui/validate.js';
import { tempDir } from './helpers.js';

const xor = (i: number) => ({ x: [i & 1, (i >> 1) & 1], y: (i & 1) ^ ((i >> 1) & 1) });
const dataset = retrace.datasetFromSource({ name: 'xor', inputShape: [2], numClasses: 2, train: { size: 4, get: xor }, val: { size: 4, get: xor } });
const model: retrace.ModelFactory = ({ tf, inputShape, numClasses }) =>
  tf.sequential({ layers: [tf.layers.dense({ inputShape, units: 4, activation: 'relu', name: 'h' }), tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'o' })] });

/** Per key: ordinary values most of the time, and the extremes around every bound that matters
 * (the schema's own, safe integers, float extremes). Batch sizes near LIMITS.batchSize are left to
 * the unit test below (a 2^24 batch would really be allocated). */
const BIG_INTS = [2 ** 31, 2 ** 32, 2 ** 32 + 1, 1e6, 1e6 + 1, 2 ** 53 - 1, 2 ** 53, 1e17, 1e300];
const BAD = [0, -1, 1.5, -0.5];
const FLOAT_EXTREMES = [Number.MAX_VALUE, Number.MIN_VALUE, 1e300, 1e-300, 1e17];
const count = (min: number) => fc.oneof({ weight: 3, arbitrary: fc.integer({ min, max: 10 }) }, fc.constantFrom(...BIG_INTS, ...BAD));
const rate = fc.oneof({ weight: 3, arbitrary: fc.double({ min: 1e-6, max: 1, noNaN: true }) }, fc.constantFrom(...FLOAT_EXTREMES, ...BAD));
const fraction = fc.oneof({ weight: 3, arbitrary: fc.double({ min: 0, max: 0.99, noNaN: true }) }, fc.constantFrom(1, 1 - 1e-16, Number.MIN_VALUE, -1e-300));
const batchSize = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 16 }) }, fc.constantFrom(LIMITS.batchSize + 1, 1e8, 1e17, 2 ** 53, ...BAD));

const configs: fc.Arbitrary<ConfigInput> = fc.record(
  {
    batchSize,
    trainingExamples: fc.oneof(count(1), fc.constant(null)),
    stopPoint: fc.oneof({ weight: 3, arbitrary: fc.double({ min: 0.01, max: 20, noNaN: true }) }, fc.constantFrom(...BIG_INTS, ...FLOAT_EXTREMES, 999999.5, ...BAD)),
    checkpoints: count(1),
    lr: rate,
    momentum: fraction,
    l2: fc.oneof(fc.constant(0), rate),
    warmupSteps: count(0),
    earlyStopping: fc.boolean(),
    earlyStopPatience: count(1),
    plateauPatience: count(1),
    lrFactor: fraction,
    minLr: rate,
    minDelta: fc.oneof(fc.constant(0), rate),
    cooldown: count(0),
    divergenceThreshold: fc.oneof(rate, fc.constant(null)),
    snapshotEvery: count(0),
    seed: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(2 ** 32 - 1, 2 ** 32, -1)),
    optimizer: fc.constantFrom('sgd', 'momentum', 'adam', 'rmsprop'),
    // Recorded verbatim in run.created's config: any text, lone surrogates included.
    label: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
  },
  { requiredKeys: [] },
) as fc.Arbitrary<ConfigInput>;

let counter = 0;

/** Creates the run through train() or branch() (stopped by its AbortSignal after 3 steps) and reads back
 * every event, the state at each one, and the summary; or checks the refusal left no run. */
async function createAndReadBack(store: string, config: ConfigInput, branchFrom?: string): Promise<'readable' | 'refused'> {
  const runId = `r${counter++}`;
  const controller = new AbortController();
  const hooks = {
    dataset,
    model,
    signal: controller.signal,
    onRecord: (e: retrace.LogRecord) => {
      // A few steps (warmup rates, an epoch boundary where stepsPerEpoch is 1), then an interrupt.
      if (e.type === 'step.finished' && e.data.step >= 3) controller.abort();
    },
  };
  try {
    if (branchFrom) await retrace.branch(branchFrom, { store, overrides: { ...config, runId, backend: 'cpu' }, ...hooks });
    else await retrace.train({ store, config: { ...config, runId, backend: 'cpu' }, ...hooks });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.message).not.toContain('\n');
    const s = await retrace.openStore(store);
    try {
      expect(await s.store.hasRun(runId), `a refused config left run ${runId} behind: ${err.message}`).toBe(false);
    } finally {
      await s.close();
    }
    return 'refused';
  }
  const s = await retrace.openStore(store);
  try {
    const seqs: number[] = [];
    for await (const e of s.events(runId)) seqs.push(e.seq);
    expect(seqs.length).toBeGreaterThan(2);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    for (const seq of [0, seqs.length - 1]) await s.state(runId, String(seq));
    expect((await s.runs()).find((r) => r.runId === runId)).toBeTruthy();
  } finally {
    await s.close();
  }
  return 'readable';
}

describe('every accepted config is readable', () => {
  it('resolveConfig (CLI, config file, library): accepted → the created run reads back, or refused before it exists', async () => {
    const store = path.join(await tempDir(), 'store');
    const outcomes = { rejected: 0, readable: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(configs, async (config) => {
        try {
          resolveConfig(config as Record<string, unknown>);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          outcomes.rejected += 1;
          return;
        }
        outcomes[await createAndReadBack(store, config)] += 1;
      }),
      { numRuns: 150, examples: [[{}]] },
    );
    // The generator must reach both sides, or the property proves nothing.
    expect(outcomes.readable).toBeGreaterThan(0);
    expect(outcomes.rejected).toBeGreaterThan(0);
  });

  it('the dashboard API (configParam, the same schema): accepted → the created run reads back, or refused before it exists', async () => {
    const store = path.join(await tempDir(), 'store');
    let readable = 0;
    await fc.assert(
      fc.asyncProperty(configs, async (config) => {
        let accepted: ConfigInput;
        try {
          accepted = configParam(config, 'config');
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          expect(err.status).toBe(400);
          return;
        }
        if ((await createAndReadBack(store, accepted)) === 'readable') readable += 1;
      }),
      { numRuns: 150, examples: [[{}]] },
    );
    expect(readable).toBeGreaterThan(0);
  });

  it('branch overrides: accepted → the branch reads back, or is refused before it exists', async () => {
    const store = path.join(await tempDir(), 'store');
    await retrace.train({ store, config: { runId: 'parent', backend: 'cpu', batchSize: 2, stopPoint: 4, checkpoints: 2 }, dataset, model });
    let readable = 0;
    await fc.assert(
      fc.asyncProperty(configs, async (config) => {
        try {
          resolveConfig(config as Record<string, unknown>);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          return;
        }
        if ((await createAndReadBack(store, config, 'parent@ckpt:1')) === 'readable') readable += 1;
      }),
      // Random overrides are mostly refused (a fresh schedule with more checkpoints than steps):
      // the branch with no override comes first, so the readable side is always exercised.
      { numRuns: 60, examples: [[{}]] },
    );
    expect(readable).toBeGreaterThan(0);
  });

  it('the issue\'s values: --stop-point 1e17 and --batch-size 1e8 are refused, naming the key and the maximum', () => {
    expect(() => resolveConfig({ stopPoint: 1e17 })).toThrow(/^config field "stopPoint": Too big: expected number to be <=1000000$/);
    expect(() => resolveConfig({ batchSize: 1e8 })).toThrow(/^config field "batchSize": Too big: expected number to be <=16777216$/);
    expect(() => configParam({ stopPoint: 1e17 }, 'config')).toThrow(/config field "stopPoint": Too big/);
    // Found by this property: rates the machine's warmup would compute as 0 or Infinity after the run existed.
    expect(() => resolveConfig({ lr: 5e-324, warmupSteps: 2 })).toThrow(/^config fields "lr", "minLr", "warmupSteps": the first warmup rate 5e-324 \/ 2 is 0 in floating point;/);
    expect(() => resolveConfig({ lr: Number.MAX_VALUE, warmupSteps: 2 })).toThrow(/^config fields "lr", "minLr", "warmupSteps": the warmup rate 1\.7976931348623157e\+308 × 2 overflows;/);
    expect(() => resolveConfig({ lr: 1e-3, minLr: 5e-324, warmupSteps: 3 })).toThrow(/first warmup rate 5e-324 \/ 3 is 0/);
    expect(resolveConfig({ lr: 5e-324 }).lr).toBe(5e-324); // no warmup: the rate is lr itself
    // A library data set larger than any file: the totals themselves are checked.
    const config = resolveConfig({ stopPoint: 1e6, checkpoints: 1 });
    expect(() => retrace.computeSchedule(config, 2 ** 40)).toThrow(/^config fields "stopPoint", "trainingExamples", "batchSize": the run would take \d+ steps, more than 9007199254740991;/);
  });

  it('a batch the backend cannot hold is refused with the largest that fits', () => {
    // iris (4 features, 3 classes) on wasm, as `--batch-size 1e8` reached it: 1e8 × (4 + 3) × 4 bytes alone is 2.6 GiB.
    expect(() => checkBatchFits(1e8, 4 + 3, 'wasm')).toThrow(/^config field "batchSize": 100000000 examples need about 2\.6 GiB per step .* more than the wasm backend's 1\.0 GiB batch limit; use --batch-size 38347922 or less$/);
    expect(() => checkBatchFits(38347922, 7, 'wasm')).not.toThrow();
    expect(() => checkBatchFits(38347923, 7, 'wasm')).toThrow(/38347922/);
    expect(() => checkBatchFits(38347923, 7, 'cpu')).not.toThrow();
  });

  it('counts every layer output of the model, forward and backward', async () => {
    const tf = await import('@tensorflow/tfjs');
    const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: 128 }), tf.layers.dense({ units: 10 })] });
    try {
      expect(floatsPerExample(m, 784, 10)).toBe(784 + 10 + 2 * (128 + 10));
    } finally {
      m.dispose();
    }
  });
});
