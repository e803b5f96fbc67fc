// Exports are standard TF.js Layers folders: stock tf.loadLayersModel loads them and predicts
// exactly what the live model predicts; stock multi-shard exports load as initFrom.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { loadModelFromDir, saveModelToDir } from '../../src/train/model-io.js';
import { ModelError } from '../../src/train/models.js';
import { createSession } from '../../src/train/session.js';
import type { BackendInfo, Tf } from '../../src/train/types.js';
import { weightsHash } from '../../src/train/weights.js';
import { syntheticDataset, testConfig } from './helpers.js';

let tf: Tf;
let backend: BackendInfo;
let dir: string;
beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
  dir = await mkdtemp(join(tmpdir(), 'retrace-model-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('model export', () => {
  it('writes model.json + weights.bin that stock tf.loadLayersModel loads and predicts identically', async () => {
    const dataset = syntheticDataset();
    const session = await createSession({ tf, backend, dataset, config: testConfig({ freeze: ['dense_hidden'] }) });
    for (let step = 0; step < 10; step++) session.step(step, step * 16, 0.01);
    const out = join(dir, 'export');
    await saveModelToDir(tf, session.model, out, { retrace: { runId: 'r1', step: 10 } });

    // A stock load: parse the JSON, read the manifest's files, tf.io.fromMemory.
    const json = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.userDefinedMetadata).toEqual({ retrace: { runId: 'r1', step: 10 } });
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    const bin = await readFile(join(out, json.weightsManifest[0].paths[0]));
    const stock = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
      }),
    );
    const x = tf.tensor2d(dataset.val.x, [dataset.val.size, 8]);
    const live = (session.model.predict(x) as ReturnType<Tf['tensor']>).dataSync();
    const loaded = (stock.predict(x) as ReturnType<Tf['tensor']>).dataSync();
    expect(Array.from(loaded)).toEqual(Array.from(live));
    expect(weightsHash(stock)).toBe(session.weightsHash());

    // Ours loads it too, and initFrom starts a session from it.
    const ours = await loadModelFromDir(tf, out);
    expect(weightsHash(ours)).toBe(session.weightsHash());
    const fromInit = await createSession({ tf, backend, dataset, config: testConfig({ initFrom: out, model: 'cnn' /* ignored */ }) });
    expect(fromInit.weightsHash()).toBe(session.weightsHash());
    expect(fromInit.variableNames).toEqual(session.variableNames);
    fromInit.step(0, 0, 0.01);

    for (const t of [x, stock, ours]) t.dispose();
    fromInit.dispose();
    session.dispose();
  });

  it('loads a stock multi-shard export as initFrom; a bad folder is a ModelError', async () => {
    const dataset = syntheticDataset();
    const session = await createSession({ tf, backend, dataset, config: testConfig() });
    const out = join(dir, 'sharded');
    await saveModelToDir(tf, session.model, out);
    const json = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
    const bin = await readFile(join(out, 'weights.bin'));
    const cut = 100 * 4;
    await writeFile(join(out, 'group1-shard1of2.bin'), bin.subarray(0, cut));
    await writeFile(join(out, 'group1-shard2of2.bin'), bin.subarray(cut));
    await rm(join(out, 'weights.bin'));
    json.weightsManifest[0].paths = ['group1-shard1of2.bin', 'group1-shard2of2.bin'];
    await writeFile(join(out, 'model.json'), JSON.stringify(json));
    const loaded = await createSession({ tf, backend, dataset, config: testConfig({ initFrom: out }) });
    expect(loaded.weightsHash()).toBe(session.weightsHash());
    loaded.dispose();

    await expect(createSession({ tf, backend, dataset, config: testConfig({ initFrom: join(dir, 'nope') }) })).rejects.toThrow(
      /^initFrom: no model\.json in /,
    );
    await expect(createSession({ tf, backend, dataset: syntheticDataset({ inputShape: [5] }), config: testConfig({ initFrom: out }) })).rejects.toThrow(
      ModelError,
    );
    session.dispose();
  });
});
