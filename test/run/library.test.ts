// The library API as README shows it: the package entry's names, a user's own data and model
// factory, progress as events, an AbortSignal, and the store as an async iterator of events.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as retrace from '../../src/index.js';
import { tempDir } from './helpers.js';

// Taken before anything here starts a backend (the wasm loader adds its handlers when it starts).
const handlersBeforeRetrace = { u: process.listenerCount('unhandledRejection'), e: process.listenerCount('uncaughtException') };
const xor = (i: number) => ({ x: [i & 1, (i >> 1) & 1], y: (i & 1) ^ ((i >> 1) & 1) });

describe('library API', () => {
  it('exports the operations by the names other code relies on', () => {
    for (const name of ['train', 'resume', 'replay', 'branch', 'exportRun', 'openStore', 'datasetFromSource', 'listRuns', 'showState']) {
      expect(typeof (retrace as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it("trains a caller's data and model, stops on an AbortSignal, resumes, and reads back through openStore", async () => {
    const store = path.join(await tempDir(), 'store');
    const dataset = retrace.datasetFromSource({ name: 'xor', inputShape: [2], numClasses: 2, train: { size: 4, get: xor }, val: { size: 4, get: xor } });
    const model: retrace.ModelFactory = ({ tf, inputShape, numClasses }) =>
      tf.sequential({
        layers: [tf.layers.dense({ inputShape, units: 8, activation: 'relu', name: 'h' }), tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'o' })],
      });
    const config = { runId: 'mine', stopPoint: 40, checkpoints: 4, lr: 0.05, batchSize: 2, backend: 'wasm' } as const;

    const controller = new AbortController();
    const seen: string[] = [];
    const cut = await retrace.train({
      store,
      config,
      dataset,
      model,
      signal: controller.signal,
      onRecord: (e) => {
        seen.push(e.type);
        if (e.type === 'step.finished' && e.data.step === 30) controller.abort();
      },
    });
    expect(cut).toMatchObject({ state: 'stopped', stopReason: 'interrupted', step: 30 });
    expect(seen.slice(0, 3)).toEqual(['run.created', 'process.attached', 'eval.finished']);

    const done = await retrace.resume('mine', { store, dataset, model });
    const straight = await retrace.train({ store, config: { ...config, runId: 'straight' }, dataset, model });
    expect(done.weightsHash).toBe(straight.weightsHash);

    const s = await retrace.openStore(store);
    try {
      expect((await s.runs()).map((r) => r.runId)).toEqual(['mine', 'straight']);
      const events: retrace.LogRecord[] = [];
      for await (const e of s.events('mine', { from: 0, to: 10 })) events.push(e);
      expect(events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(await s.state('mine', 'step:25')).toMatchObject({ state: 'training', step: 25 });
      expect(await s.state('mine', 'step:20')).toMatchObject({ state: 'checkpointing', step: 20 });
    } finally {
      await s.close();
    }
    // Without the caller's data or model, a run cannot be rebuilt: it says what it needs.
    await expect(retrace.replay('mine', { store })).rejects.toThrow(/trained on the caller's data set "xor"; pass the same data as `dataset`/);
    await expect(retrace.replay('mine', { store, dataset })).rejects.toThrow(/caller's model factory \(caller:model\); pass it again as `model`/);
    expect((await retrace.replay('mine', { store, dataset, model })).identical).toBe(true);
    // A branch from a step between checkpoints re-executes the parent with the caller's parts.
    const fine = await retrace.branch('mine@step:30', { store, dataset, model, overrides: { runId: 'fine', stopPoint: 4, checkpoints: 1 } });
    expect(fine.state).toBe('stopped');
  });

  it('loadExport loads an export with plain @tensorflow/tfjs and its metadata names the feature columns in order', async () => {
    const dir = await tempDir();
    const store = path.join(dir, 'store');
    const csv = path.join(dir, 'points.csv');
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 7},${(i * 3) % 5},${i % 3},${i % 2}`);
    // The label column sits between features: the names recorded are the others, in file order.
    await writeFile(csv, ['width,height,label,parity', ...rows].join('\n'));
    await retrace.train({ store, config: { runId: 'c', dataset: `csv:${csv}`, stopPoint: 1, checkpoints: 1, batchSize: 8, backend: 'wasm' } });
    const out = path.join(dir, 'model');
    const exported = await retrace.exportRun('c', { store, out });
    const model = await retrace.loadExport(out);
    const meta = (model.getUserDefinedMetadata() as { retrace: retrace.ExportMetadata }).retrace;
    expect(meta).toMatchObject({ runId: 'c', weightsHash: exported.weightsHash, classNames: ['0', '1', '2'], featureNames: ['width', 'height', 'parity'] });
    expect(model.inputs[0]!.shape).toEqual([null, 3]);
    const p = model.predict(tf.tensor2d([[1, 2, 0]])) as tf.Tensor;
    expect(p.shape).toEqual([1, 3]);
    p.dispose();
    model.dispose();
    // Iris names its four measurements; a folder without a model says so in one line.
    await retrace.train({ store, config: { runId: 'i', dataset: 'iris', stopPoint: 0.2, checkpoints: 1, backend: 'wasm' } });
    await retrace.exportRun('i', { store, out: path.join(dir, 'iris') });
    const iris = await retrace.loadExport(path.join(dir, 'iris'));
    expect((iris.getUserDefinedMetadata() as { retrace: retrace.ExportMetadata }).retrace.featureNames).toEqual(['sepal_length', 'sepal_width', 'petal_length', 'petal_width']);
    iris.dispose();
    await expect(retrace.loadExport(path.join(dir, 'nothing'))).rejects.toThrow(new retrace.ModelIoError(`no model.json in ${path.join(dir, 'nothing')}`));
  });

  it('a library error rejects the promise and leaves the process error handlers as they were (the wasm loader adds rethrowing ones)', async () => {
    const store = path.join(await tempDir(), 'store');
    await retrace.train({ store, config: { runId: 'w', dataset: 'iris', stopPoint: 0.2, checkpoints: 1, backend: 'wasm' } });
    expect({ u: process.listenerCount('unhandledRejection'), e: process.listenerCount('uncaughtException') }).toEqual(handlersBeforeRetrace);
    const s = await retrace.openStore(store);
    try {
      await expect(s.state('w', 'step:20')).rejects.toThrow(/^run w has no step 20/);
    } finally {
      await s.close();
    }
  });

  it('openStore of a folder that does not exist rejects and creates nothing (unless asked to create)', async () => {
    const dir = path.join(await tempDir(), 'typo');
    await expect(retrace.openStore(dir)).rejects.toThrow(`no retrace store at ${dir} (the folder does not exist)`);
    expect(existsSync(dir)).toBe(false);
    const s = await retrace.openStore(dir, { create: true });
    try {
      expect(await s.runs()).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('says to name the layers when a model with unnamed layers is rebuilt in the same process under other names', async () => {
    const store = path.join(await tempDir(), 'store');
    const dataset = retrace.datasetFromSource({ name: 'xor', inputShape: [2], numClasses: 2, train: { size: 4, get: xor }, val: { size: 4, get: xor } });
    const model: retrace.ModelFactory = ({ tf, inputShape, numClasses }) =>
      tf.sequential({ layers: [tf.layers.dense({ inputShape, units: 4, activation: 'relu' }), tf.layers.dense({ units: numClasses, activation: 'softmax' })] });
    await retrace.train({ store, config: { runId: 'anon', stopPoint: 2, checkpoints: 1, backend: 'wasm' }, dataset, model });
    await expect(retrace.replay('anon', { store, dataset, model })).rejects.toThrow(
      /^the model's weights are named "dense_Dense\d+\/kernel", .* but were recorded as "dense_Dense\d+\/kernel", .*: tfjs numbers unnamed layers per process, so give every layer of the model a name/,
    );
  });

  it('refuses a model built with another copy of tfjs, saying how to dedupe the install', async () => {
    // A second copy of tfjs-layers (a real file copy, so Node loads it as another module) sharing
    // the same tfjs-core: what two installed versions of @tensorflow/tfjs amount to.
    const dir = await tempDir();
    const real = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-layers/package.json'));
    const copy = path.join(dir, 'node_modules', '@tensorflow', 'tfjs-layers');
    await mkdir(path.join(copy, 'dist'), { recursive: true });
    await copyFile(path.join(real, 'package.json'), path.join(copy, 'package.json'));
    await copyFile(path.join(real, 'dist', 'tf-layers.node.js'), path.join(copy, 'dist', 'tf-layers.node.js'));
    await symlink(path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/package.json')), path.join(dir, 'node_modules', '@tensorflow', 'tfjs-core'));
    const other = createRequire(path.join(dir, 'x.js'))('@tensorflow/tfjs-layers') as typeof import('@tensorflow/tfjs-layers');
    const store = path.join(dir, 'store');
    const dataset = retrace.datasetFromSource({ name: 'xor', inputShape: [2], numClasses: 2, train: { size: 4, get: xor }, val: { size: 4, get: xor } });
    const model: retrace.ModelFactory = () =>
      other.sequential({ layers: [other.layers.dense({ inputShape: [2], units: 2, activation: 'softmax', name: 'o' })] }) as unknown as tf.LayersModel;
    await expect(retrace.train({ store, config: { runId: 'two', stopPoint: 1, checkpoints: 1, backend: 'wasm' }, dataset, model })).rejects.toThrow(
      /returned a model built with another copy of @tensorflow\/tfjs than retrace's: build it with the tf passed to the factory, and dedupe the install \(`npm ls @tensorflow\/tfjs` lists the copies/,
    );
    const s = await retrace.openStore(store);
    try {
      expect(await s.runs()).toEqual([]); // nothing created
    } finally {
      await s.close();
    }
  });
});
