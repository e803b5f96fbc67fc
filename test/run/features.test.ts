// Run-level features beyond the core promises: no tensor leaks over a whole run, --init-from,
// user model modules and what resume says when they change, other backends, weight snapshots,
// and the store's maintenance commands.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { blobRefs, type LogRecord } from '../../src/log/events.js';
import { collectGarbage, diskUsage } from '../../src/log/gc.js';
import { Store } from '../../src/log/store.js';
import { exportRun } from '../../src/run/export.js';
import { readRun, removeRun, RemoveError } from '../../src/run/inspect.js';
import { replay } from '../../src/run/replay.js';
import { resume, ResumeRefusedError } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { branch } from '../../src/run/branch.js';
import { datasetFromSource } from '../../src/train/data/index.js';
import { IRIS, tempDir } from './helpers.js';

async function readHistory(store: string, runId: string) {
  const s = await Store.open(store);
  try {
    return await readRun(s, runId);
  } finally {
    await s.close();
  }
}

const MODULE = (units: number) => `
export default function ({ tf, inputShape, numClasses }) {
  return tf.sequential({ layers: [
    tf.layers.dense({ inputShape, units: ${units}, activation: 'relu', name: 'hidden' }),
    tf.layers.dropout({ rate: 0.1, name: 'drop' }),
    tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'out' }),
  ] });
}
`;

describe('run features', () => {
  it('leaks no tensors over a whole run of steps, evaluations and checkpoints', async () => {
    const store = await tempDir();
    const counts: number[] = [];
    await train({
      store,
      config: { ...IRIS, runId: 'leak', checkpoints: 6 },
      onRecord: (r) => {
        if (r.type === 'checkpoint.committed') counts.push(tf.memory().numTensors);
      },
    });
    expect(counts).toHaveLength(7);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('starts a run from an exported model with --init-from', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'src' } });
    const out = path.join(await tempDir(), 'm');
    const exported = await exportRun('src', { store, checkpoint: 'last', out });
    await train({ store, config: { ...IRIS, runId: 'warm', initFrom: out, stopPoint: 2, checkpoints: 1 } });
    const h = await readHistory(store, 'warm');
    expect(h.checkpointByIndex(0)!.data.weightsHash).toBe(exported.weightsHash);
    expect(h.created.model.spec).toBe(`init-from:${out}`);
  });

  it('trains a module:PATH model, and refuses to resume when its source changed unless forced', async () => {
    const store = await tempDir();
    const dir = await tempDir();
    const file = path.join(dir, 'model.mjs');
    await writeFile(file, MODULE(6));
    const controller = new AbortController();
    const cut = await train({
      store,
      config: { ...IRIS, runId: 'mod', model: `module:${file}` },
      signal: controller.signal,
      onRecord: (r) => r.type === 'step.finished' && r.data.step === 20 && controller.abort(),
    });
    expect(cut.stopReason).toBe('interrupted');
    await writeFile(file, `${MODULE(6)}\n// edited\n`);
    await expect(resume('mod', { store })).rejects.toThrow(ResumeRefusedError);
    await expect(resume('mod', { store })).rejects.toThrow(/model module source has changed.*--force/);
    const warnings: string[] = [];
    const done = await resume('mod', { store, force: true, onWarning: (w) => warnings.push(w) });
    expect(done.stopReason).toBe('budget');
    expect(warnings.join('\n')).toMatch(/--force/);
    const h = await readHistory(store, 'mod');
    expect(h.records.filter((r) => r.type === 'run.forced')).toHaveLength(1);
  });

  it('runs on another backend when asked, and says exactness is not promised', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'w', stopPoint: 3, checkpoints: 1 } });
    const warnings: string[] = [];
    const r = await replay('w', { store, backend: 'cpu', onWarning: (w) => warnings.push(w) });
    expect(r.backendMismatch).toMatch(/recorded on wasm.*running on cpu.*not promised/);
    expect(warnings).toHaveLength(1);
  });

  it('trains the CNN on images on wasm (retrace registers the Conv2DBackpropFilter kernel tfjs-backend-wasm lacks)', async () => {
    const store = await tempDir();
    // 12×12 images whose class is the bright quadrant.
    const image = (i: number) => {
      const x = new Float32Array(144);
      const q = i % 4;
      for (let r = 0; r < 6; r += 1) for (let c = 0; c < 6; c += 1) x[(r + 6 * (q >> 1)) * 12 + c + 6 * (q & 1)] = 1;
      return { x, y: q };
    };
    const dataset = datasetFromSource({ name: 'quadrants', inputShape: [12, 12, 1], numClasses: 4, train: { size: 64, get: image }, val: { size: 16, get: image } });
    const config = { model: 'cnn', batchSize: 16, stopPoint: 5, checkpoints: 2 } as const;
    const s = await train({ store, dataset, config: { ...config, backend: 'wasm', runId: 'cnn' } });
    expect(s).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 20 });
    const h = await readHistory(store, 'cnn');
    expect(h.created.backend.name).toBe('wasm');
    expect(h.created.dataset.name).toBe('quadrants');
    expect((await replay('cnn', { store, dataset })).identical).toBe(true);
  });

  it('falls back to cpu for a model whose gradient kernels wasm lacks (depthwise convolution): auto warns, wasm refuses', async () => {
    const store = await tempDir();
    const image = (i: number) => {
      const x = new Float32Array(64);
      const q = i % 4;
      for (let r = 0; r < 4; r += 1) for (let c = 0; c < 4; c += 1) x[(r + 4 * (q >> 1)) * 8 + c + 4 * (q & 1)] = 1;
      return { x, y: q };
    };
    const dataset = datasetFromSource({ name: 'quadrants8', inputShape: [8, 8, 1], numClasses: 4, train: { size: 32, get: image }, val: { size: 8, get: image } });
    const model = ({ tf: t, inputShape, numClasses }: { tf: typeof tf; inputShape: number[]; numClasses: number }) =>
      t.sequential({
        layers: [
          t.layers.depthwiseConv2d({ inputShape, kernelSize: 3, depthMultiplier: 2, name: 'depthwise' }),
          t.layers.flatten({ name: 'flatten' }),
          t.layers.dense({ units: numClasses, activation: 'softmax', name: 'out' }),
        ],
      });
    const config = { batchSize: 8, stopPoint: 2, checkpoints: 2 } as const;
    await expect(train({ store, dataset, model, config: { ...config, backend: 'wasm', runId: 'no' } })).rejects.toThrow(
      /the wasm backend cannot train this model \(no DepthwiseConv2dNativeBackprop\w+ kernel\); use --backend cpu or auto/,
    );
    const warnings: string[] = [];
    const s = await train({ store, dataset, model, config: { ...config, backend: 'auto', runId: 'dw' }, onWarning: (w) => warnings.push(w) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^the wasm backend cannot train this model \(no DepthwiseConv2dNativeBackprop\w+ kernel\): using the cpu backend$/);
    expect(s).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 8 });
    const h = await readHistory(store, 'dw');
    expect(h.created.backend.name).toBe('cpu');
    expect((await replay('dw', { store, dataset, model })).identical).toBe(true);
  });

  it('snapshots weights every N steps and replays them', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'snap', snapshotEvery: 10, stopPoint: 3, checkpoints: 1 } });
    const h = await readHistory(store, 'snap');
    const snaps = h.records.filter((r) => r.type === 'snapshot.taken').map((r) => r.data.step);
    expect(snaps).toEqual([10, 20, 30, 40]);
    const at20 = await replay('snap', { store, to: 'step:20' });
    const snap20 = h.records.find((r) => r.type === 'snapshot.taken' && r.data.step === 20) as Extract<LogRecord, { type: 'snapshot.taken' }>;
    expect(at20.weightsHash).toBe(snap20.data.weightsHash);
  });

  it('removes runs (not while they have branches), collects unreferenced blobs and counts shared bytes once', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'root', stopPoint: 3, checkpoints: 2 } });
    await branch('root@ckpt:1', { store, overrides: { runId: 'kid', stopPoint: 1, checkpoints: 1, freeze: ['dense_hidden'] } });
    await expect(removeRun('root', { store })).rejects.toThrow(RemoveError);
    await expect(removeRun('root', { store })).rejects.toThrow(/has branches \(kid\)/);

    // A branch that changes nothing at its point starts from exactly the parent's checkpoint: the
    // same pack blob (iris's tensors are all small, so the frozen branch's pack is its own).
    await branch('root@ckpt:1', { store, overrides: { runId: 'kid2', stopPoint: 1, checkpoints: 1 } });
    const s = await Store.open(store);
    try {
      const usage = await diskUsage(s, blobRefs);
      expect(usage.shared.length).toBeGreaterThan(0); // the branch point is shared
      const sum = usage.runs.reduce((n, r) => n + r.logBytes + r.blobBytes, 0);
      expect(usage.totalBytes).toBeLessThan(sum);
    } finally {
      await s.close();
    }

    expect((await removeRun('root', { store, recursive: true })).sort()).toEqual(['kid', 'kid2', 'root']);
    const s2 = await Store.open(store);
    try {
      const before = (await s2.blobs.list()).length;
      const gc = await collectGarbage(s2, blobRefs, { graceMs: 0 });
      expect(gc.deleted.length).toBe(before);
      expect(await s2.blobs.list()).toEqual([]);
    } finally {
      await s2.close();
    }
  });
});
