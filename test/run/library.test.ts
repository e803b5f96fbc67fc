// The library API as README shows it: the package entry's names, a user's own data and model
// factory, progress as events, an AbortSignal, and the store as an async iterator of events.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as retrace from '../../src/index.js';
import { tempDir } from './helpers.js';

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
});
