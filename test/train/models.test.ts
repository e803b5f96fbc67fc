// Model construction: built-ins, module:PATH (JS, CommonJS, TypeScript via tsx) and every
// ModelError case with its one-line message.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { buildModel, ModelError } from '../../src/train/models.js';
import { createSession } from '../../src/train/session.js';
import type { BackendInfo, Tf } from '../../src/train/types.js';
import { weightsHash } from '../../src/train/weights.js';
import { syntheticDataset, testConfig } from './helpers.js';

let tf: Tf;
let backend: BackendInfo;
let dir: string;

const modules: Record<string, string> = {
  'good.mjs': `export default ({ tf, inputShape, numClasses }) => tf.sequential({ layers: [
    tf.layers.dense({ units: 16, activation: 'relu', inputShape, name: 'h' }),
    tf.layers.dropout({ rate: 0.1, name: 'd' }),
    tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'o' }) ] });`,
  'async.mjs': `export default async ({ tf, inputShape, numClasses }) => { await new Promise((r) => setTimeout(r, 5));
    return tf.sequential({ layers: [tf.layers.dense({ units: numClasses, activation: 'softmax', inputShape })] }); };`,
  'common.cjs': `module.exports = ({ tf, inputShape, numClasses }) => tf.sequential({ layers: [tf.layers.dense({ units: numClasses, activation: 'softmax', inputShape })] });`,
  'typed.ts': `import type * as tfjs from '@tensorflow/tfjs';
    interface Args { tf: typeof tfjs; inputShape: number[]; numClasses: number }
    export default ({ tf, inputShape, numClasses }: Args): tfjs.LayersModel => tf.sequential({ layers: [tf.layers.dense({ units: numClasses, activation: 'softmax', inputShape, name: 'typed_out' })] });`,
  'no-default.mjs': `export const model = 1;`,
  'not-function.mjs': `export default { layers: [] };`,
  'throws.mjs': `export default () => { throw new Error('bad layer config\\nsecond line'); };`,
  'rejects.mjs': `export default async () => { throw new TypeError('cannot fetch weights'); };`,
  'number.mjs': `export default () => 42;`,
  'wrong-output.mjs': `export default ({ tf, inputShape }) => tf.sequential({ layers: [tf.layers.dense({ units: 5, activation: 'softmax', inputShape })] });`,
  'wrong-input.mjs': `export default ({ tf, numClasses }) => tf.sequential({ layers: [tf.layers.dense({ units: numClasses, activation: 'softmax', inputShape: [7] })] });`,
  'syntax.mjs': `export default ({ tf ) => tf;`,
  'exits.mjs': `export default () => { process.exit(0); };`,
  'exits-async.mjs': `export default async () => { await new Promise((r) => setTimeout(r, 1)); process.exit(3); };`,
  'exits-on-load.mjs': `process.exit(7);\nexport default () => 1;`,
};

beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
  dir = await mkdtemp(join(tmpdir(), 'retrace-models-'));
  for (const [name, text] of Object.entries(modules)) await writeFile(join(dir, name), text);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const options = () => ({ tf, inputShape: [8], numClasses: 3, seed: 11, cwd: dir });

describe('built-in models', () => {
  it('mlp flattens rank>1 inputs; the same seed gives the same initial weights', async () => {
    const a = await buildModel('mlp', { ...options(), inputShape: [4, 2] });
    const b = await buildModel('mlp', { ...options(), inputShape: [4, 2] });
    expect(a.model.layers.map((l) => l.name)).toEqual(['flatten', 'dense_hidden', 'dropout', 'dense_out']);
    expect(weightsHash(a.model)).toBe(weightsHash(b.model));
    const c = await buildModel('mlp', { ...options(), inputShape: [4, 2], seed: 12 });
    expect(weightsHash(c.model)).not.toBe(weightsHash(a.model));
    for (const m of [a, b, c]) m.model.dispose();
  });

  it('cnn builds for images and refuses rank-1 inputs clearly', async () => {
    const cnn = await buildModel('cnn', { ...options(), inputShape: [12, 12, 1] });
    expect(cnn.model.outputs[0]!.shape).toEqual([null, 3]);
    cnn.model.dispose();
    await expect(buildModel('cnn', options())).rejects.toThrow(
      'model "cnn" needs image examples of shape [height, width, channels], but this dataset\'s examples have shape [8]; use "mlp" or a module:PATH model',
    );
    await expect(buildModel('cnn', { ...options(), inputShape: [6, 6, 1] })).rejects.toThrow(/at least 10x10/);
    await expect(buildModel('transformer', options())).rejects.toThrow('unknown model "transformer"; use mlp, cnn or module:PATH');
  });
});

describe('module:PATH', () => {
  it('a valid JS module builds with our tf, seeded, and reports its source hash', async () => {
    const a = await buildModel('module:good.mjs', options());
    const b = await buildModel(`module:${join(dir, 'good.mjs')}`, options());
    expect(a.sourceHash).toBe(createHash('sha256').update(modules['good.mjs']!).digest('hex'));
    expect(a.deterministicInit).toBe(true);
    expect(weightsHash(a.model)).toBe(weightsHash(b.model));
    a.model.dispose();
    b.model.dispose();

    const session = await createSession({ tf, backend, dataset: syntheticDataset(), config: testConfig({ model: 'module:good.mjs', freeze: ['h'] }), cwd: dir });
    expect(session.sourceHash).toBe(createHash('sha256').update(modules['good.mjs']!).digest('hex'));
    expect(session.trainableVariableNames).toEqual(['o/kernel', 'o/bias']);
    session.step(0, 0, 0.01);
    session.dispose();
  });

  it('async factory, CommonJS and TypeScript modules', async () => {
    const asyncBuilt = await buildModel('module:async.mjs', options());
    expect(asyncBuilt.deterministicInit).toBe(false);
    const cjs = await buildModel('module:common.cjs', options());
    const ts = await buildModel('module:typed.ts', options());
    expect(ts.model.layers[0]!.name).toBe('typed_out');
    for (const m of [asyncBuilt, cjs, ts]) m.model.dispose();
  });

  it('each failure is a one-line ModelError', async () => {
    const p = (name: string) => join(dir, name);
    const cases: Array<[string, string | RegExp]> = [
      ['module:missing.mjs', `model module not found: ${p('missing.mjs')} (from "module:missing.mjs")`],
      ['module:no-default.mjs', `model module ${p('no-default.mjs')} has no default export function; write: export default ({ tf, inputShape, numClasses }) => tf.sequential({...})`],
      ['module:not-function.mjs', /has no default export function/],
      ['module:throws.mjs', `model module ${p('throws.mjs')} threw: bad layer config`],
      ['module:rejects.mjs', `model module ${p('rejects.mjs')} threw: cannot fetch weights`],
      ['module:number.mjs', `model module ${p('number.mjs')} must return a tf.LayersModel (tf.sequential or tf.model), got a number`],
      ['module:wrong-output.mjs', `model module ${p('wrong-output.mjs')}: model output shape [null,5] must be [null,3] (one probability per class)`],
      ['module:wrong-input.mjs', `model module ${p('wrong-input.mjs')}: model input shape [null,7] does not match the data's [null,8]`],
      ['module:syntax.mjs', new RegExp(`^model module ${p('syntax.mjs').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} failed to load: `)],
      ['module:', 'model "module:" needs a path, e.g. module:./my-model.js'],
      // process.exit used to end the process with exit 0 and an empty --json output.
      ['module:exits.mjs', `model module ${p('exits.mjs')} called process.exit(0); a model module must return a model, not end the process`],
      ['module:exits-async.mjs', `model module ${p('exits-async.mjs')} called process.exit(3); a model module must return a model, not end the process`],
      ['module:exits-on-load.mjs', `model module ${p('exits-on-load.mjs')} called process.exit(7); a model module must return a model, not end the process`],
    ];
    const before = tf.memory().numTensors;
    for (const [spec, message] of cases) {
      const error = await buildModel(spec, options()).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, spec).toBeInstanceOf(ModelError);
      const text = (error as Error).message;
      expect(text.includes('\n'), spec).toBe(false);
      if (typeof message === 'string') expect(text, spec).toBe(message);
      else expect(text, spec).toMatch(message);
    }
    expect(tf.memory().numTensors).toBe(before); // rejected models are disposed
  });

  it("a module runs with no SIGINT/SIGTERM listener and process.exit intercepted; both are back afterwards", async () => {
    const exit = process.exit;
    const listener = () => {};
    process.on('SIGINT', listener);
    try {
      await writeFile(join(dir, 'probe.mjs'), `export default ({ tf, inputShape, numClasses }) => {
        globalThis.__probe = { sigint: process.listenerCount('SIGINT'), sigterm: process.listenerCount('SIGTERM'), exitPatched: process.exit !== globalThis.__exit };
        return tf.sequential({ layers: [tf.layers.dense({ units: numClasses, activation: 'softmax', inputShape })] }); };`);
      (globalThis as Record<string, unknown>).__exit = exit;
      const built = await buildModel('module:probe.mjs', options());
      built.model.dispose();
      expect((globalThis as Record<string, unknown>).__probe).toEqual({ sigint: 0, sigterm: 0, exitPatched: true });
      expect(process.listeners('SIGINT')).toContain(listener);
      expect(process.exit).toBe(exit);
      await buildModel('module:exits.mjs', options()).catch(() => {});
      expect(process.listeners('SIGINT')).toContain(listener);
      expect(process.exit).toBe(exit);
    } finally {
      process.off('SIGINT', listener);
    }
  });
});
