// Packs: the small tensors of a checkpoint in one content-addressed blob (src/log/packs.ts).
// Real stores, real files, real training runs.
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { CorruptBlobError } from '../../src/log/errors.js';
import { blobRefs, type TensorRef } from '../../src/log/events.js';
import { collectGarbage } from '../../src/log/gc.js';
import { blobOf, buildPack, CorruptPackedTensorError, MissingPackError, PACK_THRESHOLD, slicePack } from '../../src/log/packs.js';
import { Store } from '../../src/log/store.js';
import { branch } from '../../src/run/branch.js';
import { exportRun } from '../../src/run/export.js';
import { removeRun } from '../../src/run/inspect.js';
import { replay } from '../../src/run/replay.js';
import { resume } from '../../src/run/resume.js';
import { loadTensors, loadTrainerState, persistTensors, persistTrainerState } from '../../src/run/snapshots.js';
import { train } from '../../src/run/train.js';
import type { TensorBytes } from '../../src/train/types.js';
import { history, IRIS, tamper, tempDir } from '../run/helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** Every blob file of a store (names), sorted. */
async function blobFiles(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await readdir(path.join(store, 'blobs')).catch(() => [] as string[])) {
    for (const n of await readdir(path.join(store, 'blobs', shard))) out.push(n);
  }
  return out.sort();
}

function tensor(name: string, dtype: 'float32' | 'int32', elements: number, seed: number): TensorBytes {
  const bytes = new Uint8Array(elements * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return { name, shape: [elements], dtype, bytes };
}

describe('packing a checkpoint', () => {
  it('writes one pack blob for the small tensors plus one blob per big tensor, and reads every tensor back bit-exact', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    try {
      // An MNIST-MLP-like state: a 401 KB kernel (big), the rest small; Adam's slots alike.
      const weights = [tensor('dense_hidden/kernel', 'float32', 784 * 128, 1), tensor('dense_hidden/bias', 'float32', 128, 2), tensor('dense_out/kernel', 'float32', 1280, 3), tensor('dense_out/bias', 'float32', 10, 4)];
      const optimizer = [tensor('adam/iterations', 'int32', 1, 5), tensor('adam/m/dense_hidden/kernel', 'float32', 784 * 128, 6), tensor('adam/m/dense_out/bias', 'float32', 10, 7)];
      const written = await persistTrainerState(store.blobs, { weights, optimizer });
      const refs = [...written.weights, ...written.optimizer];
      const big = refs.filter((r) => r.bytes >= PACK_THRESHOLD);
      const small = refs.filter((r) => r.bytes < PACK_THRESHOLD);
      expect(big.map((r) => r.name)).toEqual(['dense_hidden/kernel', 'adam/m/dense_hidden/kernel']);
      for (const r of big) expect(r.pack).toBeUndefined();
      // One pack for weights and optimizer slots together, tensors in canonical order.
      const packs = new Set(small.map((r) => r.pack!.hash));
      expect(packs.size).toBe(1);
      let offset = 0;
      for (const r of small) {
        expect(r.pack!.offset).toBe(offset);
        offset += r.bytes;
      }
      expect(await blobFiles(dir)).toEqual([...packs, ...big.map((r) => r.hash)].sort());
      expect(blobRefs({ type: 'checkpoint.committed', data: written }).sort()).toEqual([...packs, ...big.map((r) => r.hash)].sort());
      // Each ref's hash is still the SHA-256 of the tensor's own bytes.
      const back = await loadTrainerState(store.blobs, written);
      expect(back.weights.map((t) => Buffer.from(t.bytes).equals(Buffer.from(weights.find((w) => w.name === t.name)!.bytes)))).toEqual([true, true, true, true]);
      expect(back.optimizer.map((t) => Buffer.from(t.bytes).equals(Buffer.from(optimizer.find((w) => w.name === t.name)!.bytes)))).toEqual([true, true, true]);
      for (const t of back.weights) expect(t.bytes.byteOffset).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('a big tensor that does not change is stored once across checkpoints; only the small ones are packed again', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    try {
      // A frozen layer: the same kernel at every checkpoint, the trained layer's tensors change.
      const frozen = tensor('frozen/kernel', 'float32', 784 * 128, 1);
      const states = [1, 2, 3].map((k) => ({ weights: [frozen, tensor('frozen/bias', 'float32', 128, 2), tensor('out/kernel', 'float32', 1280, 10 + k)], optimizer: [tensor('adam/m/out/kernel', 'float32', 1280, 20 + k)] }));
      const written: Array<Awaited<ReturnType<typeof persistTrainerState>>> = [];
      for (const st of states) written.push(await persistTrainerState(store.blobs, st));
      expect(new Set(written.map((w) => w.weights[0]!.hash)).size).toBe(1);
      expect(written.every((w) => w.weights[0]!.pack === undefined)).toBe(true);
      const packs = new Set(written.map((w) => w.weights[1]!.pack!.hash));
      expect(packs.size).toBe(3);
      expect(await blobFiles(dir)).toEqual([written[0]!.weights[0]!.hash, ...packs].sort());
    } finally {
      await store.close();
    }
  });

  it('any list of tensors of random sizes and dtypes packs and unpacks to the same bytes and refs', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    try {
      const arbTensor = fc.record({
        dtype: fc.constantFrom('float32' as const, 'int32' as const),
        // Around the threshold too: 0 elements, tiny, just below and at PACK_THRESHOLD, above it.
        elements: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: PACK_THRESHOLD / 4 - 2, max: PACK_THRESHOLD / 4 + 1 }), fc.integer({ min: 0, max: 40_000 })),
        seed: fc.integer(),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(arbTensor, { maxLength: 8 }), async (specs) => {
          const tensors = specs.map((s, i) => tensor(`t${i}`, s.dtype, s.elements, s.seed));
          const refs = await persistTensors(store.blobs, tensors);
          expect(refs.map((r) => ({ name: r.name, shape: r.shape, dtype: r.dtype, bytes: r.bytes }))).toEqual(tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, bytes: t.bytes.byteLength })));
          const packsUsed = new Set<string>();
          for (const [i, r] of refs.entries()) {
            expect(r.pack !== undefined, `${r.name}: ${r.bytes} bytes`).toBe(r.bytes < PACK_THRESHOLD);
            if (r.pack) packsUsed.add(r.pack.hash);
            // The pure form agrees with what was stored.
            expect(r.pack?.offset ?? null).toBe(buildPack(tensors.map((t) => t.bytes)).offsets[i]);
          }
          expect(packsUsed.size).toBeLessThanOrEqual(1);
          const back = await loadTensors(store.blobs, refs);
          for (const [i, t] of back.entries()) expect(Buffer.from(t.bytes).equals(Buffer.from(tensors[i]!.bytes))).toBe(true);
          // And the same tensors give the same refs (content addressing: a start state and its checkpoint 0 share a pack).
          expect(await persistTensors(store.blobs, tensors)).toEqual(refs);
        }),
        { numRuns: 40 },
      );
    } finally {
      await store.close();
    }
  });

  it('a slice that is not the tensor is an error naming the tensor and the pack', () => {
    const a = tensor('a', 'float32', 3, 1);
    const b = tensor('b', 'float32', 2, 2);
    const { pack } = buildPack([a.bytes, b.bytes]);
    const ref: TensorRef = { name: 'b', shape: [2], dtype: 'float32', hash: '0'.repeat(64), bytes: 8, pack: { hash: 'f'.repeat(64), offset: 12 } };
    expect(() => slicePack(ref, pack!)).toThrow(CorruptPackedTensorError);
    expect(() => slicePack(ref, pack!)).toThrow(/tensor b in pack blob f{64} is corrupt/);
    expect(() => slicePack({ ...ref, pack: { hash: 'f'.repeat(64), offset: 16 } }, pack!)).toThrow(/past the pack's end \(20 bytes\)/);
  });
});

describe('packed runs', () => {
  it('an iris run writes one pack blob per checkpoint and nothing else', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'p', stopPoint: 2, checkpoints: 2 } });
    const h = await history(store, 'p');
    const packs = new Set(h.checkpoints.flatMap((c) => [...c.data.weights, ...c.data.optimizer].map(blobOf)));
    expect(packs.size).toBe(h.checkpoints.length);
    for (const c of h.checkpoints) for (const r of [...c.data.weights, ...c.data.optimizer]) expect(r.pack).toBeDefined();
    expect(await blobFiles(store)).toEqual([...packs].sort());
  });

  it('a damaged pack: resume and export refuse naming the tensor and the pack, fsck reports it; nothing is written', async () => {
    const store = await tempDir();
    const controller = new AbortController();
    await train({ store, config: { ...IRIS, runId: 'd' }, signal: controller.signal, onRecord: (r) => r.type === 'step.finished' && r.data.step === 45 && controller.abort() });
    const h = await history(store, 'd');
    const last = h.checkpoints.at(-1)!;
    const pack = blobOf(last.data.weights[0]!);
    const file = path.join(store, 'blobs', pack.slice(0, 2), pack);
    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 0x01;
    await writeFile(file, bytes);
    const before = (await history(store, 'd')).records.length;

    const first = last.data.weights[0]!.name;
    await expect(resume('d', { store })).rejects.toThrow(CorruptBlobError);
    await expect(resume('d', { store })).rejects.toThrow(new RegExp(`tensor ${first} in pack blob ${pack} is corrupt`));
    await expect(exportRun('d', { store, checkpoint: 'last', out: path.join(await tempDir(), 'm') })).rejects.toThrow(new RegExp(`in pack blob ${pack} is corrupt`));
    expect((await history(store, 'd')).records.length).toBe(before);

    const report = await fsck(store);
    expect(report.ok).toBe(false);
    const named = report.problems.filter((p) => p.kind === 'blob' && p.blob === pack);
    expect(named.length).toBeGreaterThan(0);
    expect(named.some((p) => p.message.includes(`weights tensor ${first}: its pack: blob ${pack} is corrupt`))).toBe(true);

    // Missing altogether: the same, as MissingBlobError.
    await rm(file);
    await expect(resume('d', { store })).rejects.toThrow(MissingPackError);
    await expect(resume('d', { store })).rejects.toThrow(new RegExp(`pack blob ${pack} holding tensor ${first} is missing`));
    expect((await fsck(store)).problems.some((p) => p.blob === pack && p.message.includes('is missing from the store'))).toBe(true);
  });

  it('a ref that points at the wrong bytes of an intact pack: fsck and branch name the tensor and the pack', async () => {
    const store = await tempDir();
    await train({ store, config: { ...IRIS, runId: 'f', stopPoint: 2, checkpoints: 2 } });
    const ckpt1 = (await history(store, 'f')).checkpoints.find((c) => c.data.index === 1)!;
    const bias = ckpt1.data.weights[1]!;
    const pack = blobOf(bias);
    // A forged history (valid checksum): checkpoint 1 says its bias starts where its kernel does.
    await tamper(store, 'f', ckpt1.seq, (rec) => {
      const data = rec.data as { weights: TensorRef[] };
      return { ...rec, data: { ...data, weights: data.weights.map((r) => (r.name === bias.name ? { ...r, pack: { hash: pack, offset: 0 } } : r)) } };
    });
    const report = await fsck(store);
    const problem = report.problems.find((p) => p.kind === 'blob' && p.seq === ckpt1.seq);
    expect(problem?.blob).toBe(pack);
    expect(problem?.message).toMatch(new RegExp(`weights tensor ${bias.name}: tensor ${bias.name} in pack blob ${pack} is corrupt: its ${bias.bytes} bytes hash to [0-9a-f]{64}, the log says ${bias.hash}`));
    await expect(branch('f@ckpt:1', { store, overrides: { runId: 'g' } })).rejects.toThrow(CorruptPackedTensorError);
    await expect(branch('f@ckpt:1', { store, overrides: { runId: 'g' } })).rejects.toThrow(new RegExp(`tensor ${bias.name} in pack blob ${pack} is corrupt`));
  });

  it('gc keeps the packs runs name and deletes the packs of a removed run', async () => {
    const dir = await tempDir();
    await train({ store: dir, config: { ...IRIS, runId: 'keep', stopPoint: 2, checkpoints: 2 } });
    await train({ store: dir, config: { ...IRIS, runId: 'gone', stopPoint: 2, checkpoints: 2, seed: 8 } });
    const packsOf = async (runId: string) => new Set((await history(dir, runId)).records.flatMap((r) => blobRefs(r)));
    const keep = await packsOf('keep');
    const gone = [...(await packsOf('gone'))].filter((h) => !keep.has(h));
    expect(gone.length).toBeGreaterThan(0);
    await removeRun('gone', { store: dir });
    const store = await Store.open(dir);
    try {
      const result = await collectGarbage(store, blobRefs, { graceMs: 0 });
      expect(result.deleted.sort()).toEqual(gone.sort());
    } finally {
      await store.close();
    }
    expect(await blobFiles(dir)).toEqual([...keep].sort());
    expect((await fsck(dir)).problems).toEqual([]);
    expect((await replay('keep', { store: dir, verify: true })).identical).toBe(true);
  });

  it('a run written before packs resumes: its old checkpoints stay unpacked, its new ones are packed, and it all verifies', async () => {
    const store = path.join(await tempDir(), 'store');
    await cp(path.join(FIXTURES, 'pre-seam-store', 'store'), store, { recursive: true });
    const before = (await history(store, 'exp')).checkpoints.length;
    await resume('exp', { store });
    const h = await history(store, 'exp');
    expect(h.checkpoints.length).toBeGreaterThan(before);
    for (const c of h.checkpoints.slice(0, before)) expect(c.data.weights.every((r) => r.pack === undefined)).toBe(true);
    for (const c of h.checkpoints.slice(before)) expect(c.data.weights.every((r) => r.pack !== undefined)).toBe(true);
    expect((await fsck(store)).problems).toEqual([]);
    const r = await replay('exp', { store, verify: true });
    expect(r.message).toBeNull();
    expect(r.identical).toBe(true);
  });

  it('a branch from a checkpoint written before packs (one blob per tensor) trains, packs its own, and verifies', async () => {
    const store = path.join(await tempDir(), 'store');
    await cp(path.join(FIXTURES, 'pre-seam-store', 'store'), store, { recursive: true });
    const parent = (await history(store, 'pl')).checkpoints.find((c) => c.data.index === 3)!;
    for (const r of parent.data.weights) expect(r.pack).toBeUndefined();
    await branch('pl@ckpt:3', { store, overrides: { runId: 'nb', stopPoint: 1, checkpoints: 1 } });
    const h = await history(store, 'nb');
    const created = h.records[0]!;
    if (created.type !== 'run.created') throw new Error('no run.created');
    // Its start state is the parent's checkpoint, same tensors (hashes), now packed.
    expect(created.data.start!.weights.map((r) => r.hash)).toEqual(parent.data.weights.map((r) => r.hash));
    expect(created.data.start!.weights.every((r) => r.pack !== undefined)).toBe(true);
    expect((await fsck(store)).problems).toEqual([]);
    expect((await replay('nb', { store, verify: true })).identical).toBe(true);
    expect((await replay('pl', { store, verify: true })).identical).toBe(true);
  });
});
