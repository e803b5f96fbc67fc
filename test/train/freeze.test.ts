// Freezing layers: frozen weights never change, the optimizer trains only the rest, and slots are
// matched by canonical variable name when a branch freezes layers (fewer trainable variables, so
// every remaining variable has a different POSITION in the var list than before).
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { ModelError } from '../../src/train/models.js';
import { createSession } from '../../src/train/session.js';
import type { BackendInfo, TensorBytes, Tf } from '../../src/train/types.js';
import { syntheticDataset, testConfig } from './helpers.js';

let tf: Tf;
let backend: BackendInfo;
beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
});

const dataset = syntheticDataset();
const bytesOf = (list: readonly TensorBytes[], prefix: string): Record<string, Uint8Array> =>
  Object.fromEntries(list.filter((e) => e.name.startsWith(prefix)).map((e) => [e.name, e.bytes]));

describe('freeze', () => {
  it('frozen layer weights stay unchanged while the others train', async () => {
    const session = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'adam', freeze: ['dense_hidden'], l2: 1e-3 }) });
    expect(session.variableNames).toEqual(['dense_hidden/kernel', 'dense_hidden/bias', 'dense_out/kernel', 'dense_out/bias']);
    expect(session.trainableVariableNames).toEqual(['dense_out/kernel', 'dense_out/bias']);
    const before = session.capture().weights;
    for (let step = 0; step < 30; step++) session.step(step, step * 16, 0.01);
    const after = session.capture().weights;
    expect(after.map((w) => w.name)).toEqual(before.map((w) => w.name)); // canonical order survives freezing
    expect(after[0]!.bytes).toEqual(before[0]!.bytes);
    expect(after[1]!.bytes).toEqual(before[1]!.bytes);
    expect(after[2]!.bytes).not.toEqual(before[2]!.bytes);
    expect(after[3]!.bytes).not.toEqual(before[3]!.bytes);
    expect(session.capture().optimizer.map((e) => e.name)).toEqual([
      'adam/iterations',
      'adam/accBeta1',
      'adam/accBeta2',
      'adam/m/dense_out/kernel',
      'adam/m/dense_out/bias',
      'adam/v/dense_out/kernel',
      'adam/v/dense_out/bias',
    ]);
    session.dispose();
  });

  it('a branch that freezes a layer keeps the optimizer slots of the others, by name', async () => {
    const parent = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'adam' }) });
    for (let step = 0; step < 20; step++) parent.step(step, step * 16, 0.01);
    const state = parent.capture();
    parent.dispose();

    const branch = async () => {
      const s = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'adam', freeze: ['dense_hidden'] }) });
      const outcome = s.restore(state);
      return { s, outcome };
    };
    const { s: a, outcome } = await branch();
    expect(outcome.restored).toBe(true);
    expect(outcome.droppedSlots).toEqual(['dense_hidden/kernel', 'dense_hidden/bias']);
    expect(outcome.missingSlots).toEqual([]);
    const restored = a.capture().optimizer;
    // dense_out's slots sat at positions 2,3 in the parent and are at 0,1 now: matched by name.
    expect(bytesOf(restored, 'adam/m/')).toEqual({
      'adam/m/dense_out/kernel': bytesOf(state.optimizer, 'adam/m/')['adam/m/dense_out/kernel'],
      'adam/m/dense_out/bias': bytesOf(state.optimizer, 'adam/m/')['adam/m/dense_out/bias'],
    });
    expect(bytesOf(restored, 'adam/acc')).toEqual(bytesOf(state.optimizer, 'adam/acc'));
    expect(bytesOf(restored, 'adam/iterations')).toEqual(bytesOf(state.optimizer, 'adam/iterations'));

    for (let step = 20; step < 40; step++) a.step(step, step * 16, 0.01);
    const hidden = (ws: readonly TensorBytes[]) => ws.filter((w) => w.name.startsWith('dense_hidden/'));
    expect(hidden(a.capture().weights)).toEqual(hidden(state.weights));

    // The branch is itself exactly reproducible.
    const { s: b } = await branch();
    for (let step = 20; step < 40; step++) b.step(step, step * 16, 0.01);
    expect(b.weightsHash()).toBe(a.weightsHash());
    a.dispose();
    b.dispose();
  });

  it('an unknown layer name is a ModelError listing the layers', async () => {
    const attempt = createSession({ tf, backend, dataset, config: testConfig({ freeze: ['dense_1'] }) });
    await expect(attempt).rejects.toThrow(ModelError);
    await expect(createSession({ tf, backend, dataset, config: testConfig({ freeze: ['dense_1'] }) })).rejects.toThrow(
      'freeze: no layer named "dense_1"; the model\'s layers are "dense_hidden", "dropout", "dense_out"',
    );
    await expect(createSession({ tf, backend, dataset, config: testConfig({ freeze: ['dense_hidden', 'dense_out'] }) })).rejects.toThrow(
      /no trainable weights left/,
    );
    expect(tf.memory().numTensors).toBe(0);
  });
});
