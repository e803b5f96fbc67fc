// The core promises, through the library API on a real (small) run: the log folds to the live
// machine, replay verifies it bit for bit and catches tampering, branches start from exactly
// the state they name, and an export loads in stock tfjs and predicts what the checkpoint does.
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stateName, toPlain } from '../../machines/fold.js';
import { ConfigError } from '../../src/config.js';
import type { LogRecord } from '../../src/log/events.js';
import { Store } from '../../src/log/store.js';
import { RunExistsError, UnknownRunError, CorruptLogError, MissingBlobError } from '../../src/log/errors.js';
import { branch } from '../../src/run/branch.js';
import { exportRun } from '../../src/run/export.js';
import { PointError } from '../../src/run/history.js';
import { replay } from '../../src/run/replay.js';
import { resume } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { loadTensors } from '../../src/run/snapshots.js';
import { initBackend } from '../../src/train/backend.js';
import { writeWeights } from '../../src/train/weights.js';
import { loadDataset } from '../../src/train/data/index.js';
import { blobOf } from '../../src/log/packs.js';
import { IRIS, tamper, tempDir, history } from './helpers.js';

describe('a run and its log', () => {
  it('folds, from event 0, to every live snapshot the driver stored and every transition it logged', async () => {
    const store = await tempDir();
    const live: LogRecord[] = [];
    const summary = await train({ store, config: { ...IRIS, runId: 'fold', warmupSteps: 10, plateauPatience: 1 }, onRecord: (r) => live.push(r) });
    const h = await history(store, 'fold');
    expect(h.records.map((r) => r.seq)).toEqual(live.map((r) => r.seq));

    const transitions: Array<{ from: string; to: string; cause: number }> = [];
    const checkpointSnapshots = new Map<number, unknown>();
    const final = h.foldFromStart((record, before, after, accepted) => {
      expect(accepted, `event ${record.seq} ${record.type}`).toBe(true);
      if (stateName(before) !== stateName(after)) transitions.push({ from: stateName(before), to: stateName(after), cause: record.seq });
      if (record.type === 'checkpoint.committed') checkpointSnapshots.set(record.seq, toPlain(after));
    });
    const logged = h.records.filter((r) => r.type === 'state.changed').map((r) => ({ from: r.data.from, to: r.data.to, cause: r.data.cause }));
    expect(transitions).toEqual(logged);
    expect(logged.map((t) => t.to)).toContain('warmup');
    for (const c of h.checkpoints) expect(c.data.machine).toEqual(checkpointSnapshots.get(c.seq));
    expect(stateName(final)).toBe(summary.state);
    expect(final.context.step).toBe(summary.step);
    expect(final.context.best?.index).toBe(summary.bestCheckpoint);
    // The stored-snapshot fold (what `state --at` uses) agrees with the full fold at every event.
    for (const seq of [0, 5, 40, 77, h.lastSeq]) {
      expect(h.snapshotAt(seq).snapshot.context).toEqual(
        (() => {
          let snap = null as unknown;
          h.foldFromStart((record, _b, after) => {
            if (record.seq <= seq) snap = after.context;
          });
          return snap ?? h.snapshotAt(0).snapshot.context;
        })(),
      );
    }
  });

  it('replays bit-exactly, and names the first step of a tampered log', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'r' } });
    const ok = await replay('r', { store, verify: true });
    expect(ok).toMatchObject({ identical: true, firstDivergence: null });
    expect(ok.eventsVerified).toBeGreaterThan(150);

    const h = await history(store, 'r');
    const step60 = h.records.find((r) => r.type === 'step.finished' && r.data.step === 60)!;
    await tamper(store, 'r', step60.seq, (rec) => {
      const data = rec.data as { loss: number };
      const bits = new Float32Array([data.loss]);
      new Uint32Array(bits.buffer)[0]! ^= 1; // one bit of the float32 loss
      return { ...rec, data: { ...data, loss: bits[0]! } };
    });
    const bad = await replay('r', { store, verify: true });
    expect(bad.identical).toBe(false);
    expect(bad.firstDivergence).toBe(60);
    expect(bad.divergentSeq).toBe(step60.seq);
  });

  it('branches from ckpt:K with exactly the weights and optimizer state of checkpoint K', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'p' } });
    const child = await branch('p@ckpt:2', { store, overrides: { runId: 'c', lr: 0.003, stopPoint: 2, checkpoints: 1 } });
    expect(child.state).toBe('stopped');
    const parent = await history(store, 'p');
    const c = await history(store, 'c');
    const k2 = parent.checkpointByIndex(2)!.data;
    const c0 = c.checkpointByIndex(0)!.data;
    expect(c0.weightsHash).toBe(k2.weightsHash);
    expect(c0.weights.map((t) => t.hash)).toEqual(k2.weights.map((t) => t.hash));
    expect(c0.optimizer.map((t) => t.hash)).toEqual(k2.optimizer.map((t) => t.hash));
    expect(c.created.parent).toMatchObject({ runId: 'p', point: 'ckpt:2', step: k2.step });
    expect(c.created.config.lr).toBe(0.003);
    // The branch continues its parent's data cursor: the same config replays the parent exactly.
    const same = await branch('p@ckpt:2', { store, overrides: { runId: 'same', stopPoint: 5, checkpoints: 2 } });
    const k4 = parent.checkpointByIndex(4)!.data;
    expect(same.step).toBe(k4.step - k2.step);
    expect(same.weightsHash).toBe(k4.weightsHash);
  });

  it('branches from a step between checkpoints by exact re-execution', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'p' } });
    const at50 = await replay('p', { store, to: 'step:50' });
    await branch('p@step:50', { store, overrides: { runId: 's', stopPoint: 1, checkpoints: 1 } });
    const s = await history(store, 's');
    expect(s.checkpointByIndex(0)!.data.weightsHash).toBe(at50.weightsHash);
    expect(at50.toStep).toBe(50);
  });

  it('exports a checkpoint that stock tf.loadLayersModel loads and that predicts what the checkpoint does', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'e' } });
    const out = path.join(await tempDir(), 'model');
    const result = await exportRun('e', { store, checkpoint: '2', out });
    expect(result).toMatchObject({ runId: 'e', checkpoint: 2, out });
    const h = await history(store, 'e');
    // Exporting observes a run (rules 2): it stays stopped, and the export is recorded.
    expect(stateName(h.snapshotAt().snapshot)).toBe('stopped');
    expect(h.snapshotAt().snapshot.context.exported).toEqual({ checkpoint: 2, kind: 'epoch', out });

    const { tf } = await initBackend('wasm');
    const json = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
    const bin = await readFile(path.join(out, 'weights.bin'));
    const loaded = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
      }),
    );
    expect(json.userDefinedMetadata.retrace).toMatchObject({ runId: 'e', checkpoint: 2, weightsHash: result.weightsHash });

    const fromCheckpoint = await tf.models.modelFromJSON({ modelTopology: h.created.model.topology as never });
    const s = await Store.open(store);
    writeWeights(fromCheckpoint, await loadTensors(s.blobs, h.checkpointByIndex(2)!.data.weights));
    await s.close();
    const data = await loadDataset('iris', { label: 'label', valFraction: 0.2, seed: 7 });
    const x = tf.tensor2d(data.val.x, [data.val.size, 4]);
    const a = (loaded.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync();
    const b = (fromCheckpoint.predict(x) as import('@tensorflow/tfjs').Tensor).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    loaded.dispose();
    fromCheckpoint.dispose();
    x.dispose();
  });
});

describe('errors a user can cause', () => {
  it('refuses an existing run id, an unknown run and an unknown point', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'x', stopPoint: 1, checkpoints: 1 } });
    await expect(train({ store, config: { ...IRIS, runId: 'x' } })).rejects.toThrow(RunExistsError);
    await expect(resume('nope', { store })).rejects.toThrow(UnknownRunError);
    await expect(resume('nope', { store })).rejects.toThrow(/unknown run "nope".*"x"/);
    await expect(branch('x@ckpt:9', { store })).rejects.toThrow(PointError);
    await expect(branch('x@ckpt:9', { store })).rejects.toThrow(/has no checkpoint 9 \(it has 0, 1\)/);
    await expect(replay('x', { store, to: 'step:999' })).rejects.toThrow(/has no step 999/);
  });

  it('names the field of a bad config value and what it allows', async () => {
    const store = await tempDir();
    await expect(train({ store, config: { ...IRIS, batchSize: -3 } })).rejects.toThrow(ConfigError);
    await expect(train({ store, config: { ...IRIS, batchSize: -3 } })).rejects.toThrow(/"batchSize"/);
    await expect(train({ store, config: { ...IRIS, optimizer: 'adamw' as never } })).rejects.toThrow(/"optimizer": must be one of sgd, momentum, adam, rmsprop/);
    await expect(train({ store, config: { ...IRIS, bogus: 1 } as never })).rejects.toThrow(/unknown config key "bogus"/);
    const s = await Store.open(store);
    expect(await s.listRuns()).toEqual([]); // nothing was created by a rejected config
    await s.close();
  });

  it('stops a run whose loss leaves the finite range as diverged, keeping the best checkpoint exportable', async () => {
    const store = await tempDir();
    // An L2 term of 1e38 × Σw² overflows float32: the loss becomes Infinity on the first step.
    const summary = await train({ store, config: { ...IRIS, runId: 'd', l2: 1e38 } });
    expect(summary).toMatchObject({ state: 'stopped', stopReason: 'diverged' });
    const h = await history(store, 'd');
    const last = h.records.filter((r) => r.type === 'step.finished').at(-1)!;
    expect(Number.isFinite((last.data as { loss: number }).loss)).toBe(false);
    expect(summary.bestCheckpoint).toBe(0);
    const out = path.join(await tempDir(), 'm');
    await expect(exportRun('d', { store, checkpoint: 'best', out })).resolves.toMatchObject({ checkpoint: 0 });
    expect((await replay('d', { store })).identical).toBe(true);
  });

  it('stops as diverged when the loss passes divergenceThreshold', async () => {
    const store = await tempDir();
    const summary = await train({ store, config: { ...IRIS, runId: 't', divergenceThreshold: 1e-6 } });
    expect(summary).toMatchObject({ stopReason: 'diverged', step: 1 });
  });

  it('reports a damaged record with its run and seq, and a missing snapshot with its hash', async () => {
    const store = await tempDir();
    const controller = new AbortController();
    await train({
      store,
      config: { ...IRIS, runId: 'k' },
      signal: controller.signal,
      onRecord: (r) => r.type === 'step.finished' && r.data.step === 45 && controller.abort(),
    });
    const h = await history(store, 'k');
    const last = h.checkpoints.at(-1)!;
    const hash = blobOf(last.data.weights[0]!); // its pack: iris's tensors are all small
    await unlink(path.join(store, 'blobs', hash.slice(0, 2), hash));
    await expect(resume('k', { store })).rejects.toThrow(MissingBlobError);
    await expect(resume('k', { store })).rejects.toThrow(new RegExp(hash.slice(0, 16)));

    await tamper(store, 'k', 20, (rec) => {
      const value = `00000000 ${JSON.stringify(rec)}`;
      return value.replace('"step.finished"', '"step.finishes"');
    });
    await expect(replay('k', { store })).rejects.toThrow(CorruptLogError);
    await expect(replay('k', { store })).rejects.toThrow(/run "?k"?.*\b20\b/);
  });
});
