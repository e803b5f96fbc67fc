// 2. Checkpoint commit throughput: bytes of weights + Adam state committed per second through the
// store (each tensor a content-addressed blob, written and fsynced, then the checkpoint event
// appended with sync) against fs.writeFile + fsync of the same bytes to the same disk.
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Store } from '../src/log/store.js';
import { hashWeightsAsync, persistTensors } from '../src/run/snapshots.js';
import type { TensorBytes } from '../src/train/types.js';
import { fmt, fmtBytes, gc, main, median, removeDir, scratchDir, type Table, type Target } from './lib/common.js';
import { writeBarChart } from './lib/svg.js';

const REPS = Number(process.env.BENCH_REPS ?? 5);

/** Starts each measurement with no dirty pages left by the previous one (or by anyone else). */
async function settle(): Promise<void> {
  try {
    execFileSync('sync');
  } catch {
    // no sync(1): measurements are just noisier
  }
  await new Promise((r) => setTimeout(r, 50));
}

/** SHA-256 of every tensor once, in this process: the CPU floor of content addressing. */
function hashOnce(ts: TensorBytes[]): number {
  const t0 = performance.now();
  for (const t of ts) createHash('sha256').update(t.bytes).digest();
  return (performance.now() - t0) / 1000;
}

/** A dense model of about `params` parameters: 4 layers, each a kernel and a bias, widths chosen to fit. */
function denseShapes(params: number): number[][] {
  // in → h → h → h → 10 with in = h: params ≈ 3h² + 10h; solve for h.
  const h = Math.max(8, Math.floor((-10 + Math.sqrt(100 + 12 * params)) / 6));
  const widths = [h, h, h, h, 10];
  const shapes: number[][] = [];
  for (let i = 0; i + 1 < widths.length; i++) shapes.push([widths[i]!, widths[i + 1]!], [widths[i + 1]!]);
  return shapes;
}

function tensors(shapes: number[][], prefix: string): TensorBytes[] {
  return shapes.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(n * 4);
    randomFillSync(bytes);
    // Random bits include NaN patterns; that does not matter for I/O. Keep it float-like anyway.
    const f = new Float32Array(bytes.buffer);
    for (let j = 0; j < f.length; j += 1024) f[j] = Math.fround(j / 1e6);
    return { name: `${prefix}${i}`, shape, dtype: 'float32', bytes };
  });
}

/** Makes every tensor's content new (the store skips blobs it already has). */
function perturb(ts: TensorBytes[], rep: number): void {
  for (const t of ts) new DataView(t.bytes.buffer, t.bytes.byteOffset).setUint32(0, 0x9e3779b9 ^ rep, true);
}

interface Sample {
  seconds: number;
  bytes: number;
}

/** What the driver's commitCheckpoint does with the captured state, minus reading it from tfjs. */
async function storeCommit(store: Store, runId: string, weights: TensorBytes[], optimizer: TensorBytes[], index: number): Promise<Sample> {
  const log = await store.openRun(runId, 'write');
  try {
    const bytes = [...weights, ...optimizer].reduce((a, t) => a + t.bytes.byteLength, 0);
    const t0 = performance.now();
    const [weightsHash, w, o] = await Promise.all([hashWeightsAsync(weights), persistTensors(store.blobs, weights), persistTensors(store.blobs, optimizer)]);
    await log.append(
      [{ type: 'checkpoint.committed', data: { kind: 'epoch', index, step: index, weightsHash, examplesSeen: index, weights: w, optimizer: o, optimizerKind: 'adam', machine: { value: 'training', context: {} } } }],
      { sync: true },
    );
    return { seconds: (performance.now() - t0) / 1000, bytes };
  } finally {
    await log.close();
  }
}

/** The store's file protocol alone (temp file, fsync, rename, directory fsync per blob), hashes precomputed. */
async function blobIoOnly(store: Store, tensors: TensorBytes[]): Promise<Sample> {
  const hashes = tensors.map((t) => createHash('sha256').update(t.bytes).digest('hex'));
  const bytes = tensors.reduce((a, t) => a + t.bytes.byteLength, 0);
  await settle();
  const t0 = performance.now();
  await store.blobs.putMany(tensors.map((t) => t.bytes), hashes);
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

/** The bare alternative: one file, fs.promises.writeFile of each tensor's bytes in turn, one fsync. */
async function rawCommit(dir: string, weights: TensorBytes[], optimizer: TensorBytes[], rep: number): Promise<Sample> {
  const all = [...weights, ...optimizer];
  const bytes = all.reduce((a, t) => a + t.bytes.byteLength, 0);
  const file = path.join(dir, `raw-${rep}.bin`);
  const t0 = performance.now();
  const fh = await fsp.open(file, 'w');
  try {
    for (const t of all) await fh.writeFile(t.bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  // Kept until the size is done, as the store keeps its blobs: freeing space between repetitions
  // would let one side write into just-freed blocks and the other into new ones, which this
  // virtual disk serves at very different speeds.
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

const SIZES = (process.env.BENCH_CKPT_SIZES ?? '100000,1000000,10000000,50000000').split(',').map(Number);

main('checkpoint-throughput', async () => {
  const dir = scratchDir('ckpt');
  const rows: string[][] = [];
  const data: unknown[] = [];
  const ratios: number[] = [];
  const storeMBs: number[] = [];
  const rawMBs: number[] = [];
  const labels: string[] = [];
  const targets: Target[] = [];
  try {
    for (const params of SIZES) {
      const shapes = denseShapes(params);
      const actual = shapes.reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
      const weights = tensors(shapes, 'w');
      const optimizer = [...tensors(shapes, 'm'), ...tensors(shapes, 'v')];
      const storeDir = path.join(dir, `store-${params}`);
      const store = await Store.open(storeDir);
      const runId = `ckpt-${params}`;
      await (await store.createRun(runId)).close();
      const s: Sample[] = [];
      const r: Sample[] = [];
      const hashSeconds: number[] = [];
      const ioOnly: Sample[] = [];
      const reps = params >= 5e7 ? REPS - 2 : params >= 1e7 ? REPS : REPS + 2;
      // One untimed round of each: page-cache and allocator warm-up.
      perturb(weights, 1000);
      perturb(optimizer, 1000);
      await storeCommit(store, runId, weights, optimizer, 0);
      await rawCommit(dir, weights, optimizer, -1);
      for (let rep = 0; rep < reps; rep++) {
        perturb(weights, rep);
        perturb(optimizer, rep);
        gc();
        hashSeconds.push(hashOnce([...weights, ...optimizer]));
        for (const side of rep % 2 === 0 ? ['store', 'raw'] : ['raw', 'store']) {
          await settle();
          if (side === 'store') s.push(await storeCommit(store, runId, weights, optimizer, rep + 1));
          else r.push(await rawCommit(dir, weights, optimizer, rep));
        }
        perturb(weights, rep + 500);
        perturb(optimizer, rep + 500);
        ioOnly.push(await blobIoOnly(store, [...weights, ...optimizer]));
      }
      await store.close();
      removeDir(storeDir);
      for (const f of await fsp.readdir(dir)) if (f.startsWith('raw-')) await fsp.rm(path.join(dir, f));
      const bytes = s[0]!.bytes;
      const storeRate = s.map((x) => x.bytes / x.seconds);
      const rawRate = r.map((x) => x.bytes / x.seconds);
      const pairRatios = s.map((x, i) => x.bytes / x.seconds / rawRate[i]!);
      const ratio = median(pairRatios);
      const label = `${fmt(actual / 1e6)}M params`;
      rows.push([
        label,
        fmtBytes(bytes),
        String(weights.length + optimizer.length),
        fmt(median(s.map((x) => x.seconds * 1000))),
        fmt(median(r.map((x) => x.seconds * 1000))),
        fmt(median(hashSeconds) * 1000),
        fmt(median(ioOnly.map((x) => x.seconds * 1000))),
        fmt(median(storeRate) / 1e6),
        fmt(median(rawRate) / 1e6),
        fmt(ratio, 3),
        `${fmt(Math.min(...pairRatios), 2)}–${fmt(Math.max(...pairRatios), 2)}`,
      ]);
      data.push({ params: actual, bytes, tensors: weights.length + optimizer.length, storeSeconds: s.map((x) => x.seconds), rawSeconds: r.map((x) => x.seconds), hashSeconds, blobIoOnlySeconds: ioOnly.map((x) => x.seconds), ratios: pairRatios });
      labels.push(label);
      ratios.push(ratio);
      storeMBs.push(median(storeRate) / 1e6);
      rawMBs.push(median(rawRate) / 1e6);
      if (params >= 1e7) targets.push({ what: `commit throughput vs raw writeFile+fsync, ${label}`, target: '≥ 0.6', measured: fmt(ratio, 3), met: ratio >= 0.6 });
      console.log(`  ${label}: store ${fmt(median(storeRate) / 1e6)} MB/s, raw ${fmt(median(rawRate) / 1e6)} MB/s, ratio ${fmt(ratio, 3)}`);
    }
  } finally {
    removeDir(dir);
  }
  const table: Table = {
    title: 'Checkpoint commit throughput (weights + Adam m and v), store vs raw writeFile + fsync (medians)',
    headers: ['model', 'checkpoint', 'tensors', 'store ms', 'raw ms', 'SHA-256 once ms', 'blob I/O only ms', 'store MB/s', 'raw MB/s', 'ratio', 'ratio range'],
    rows,
  };
  const chart = writeBarChart('checkpoint-throughput.svg', {
    title: 'Checkpoint commit throughput (MB/s, higher is better)',
    groups: labels,
    series: [
      { name: 'retrace store', values: storeMBs },
      { name: 'raw writeFile + fsync', values: rawMBs },
    ],
    unit: 'MB/s',
    labels: [storeMBs.map((v, i) => `${fmt(v)} MB/s (×${fmt(ratios[i]!, 2)})`), rawMBs.map((v) => `${fmt(v)} MB/s`)],
  });
  type Row = { params: number; bytes: number; storeSeconds: number[]; rawSeconds: number[]; hashSeconds: number[]; blobIoOnlySeconds: number[]; ratios: number[] };
  const rowsData = data as Row[];
  const notes: string[] = [];
  const small = rowsData.filter((r) => r.params < 5e6);
  if (small.length) {
    notes.push(
      'Small checkpoints are dominated by fixed costs, not bytes: a checkpoint is 24 files made durable (each temp file fsynced, renamed, its directory fsynced: ' +
        `${small.map((r) => `${fmt(median(r.blobIoOnlySeconds) * 1000)} ms for ${fmtBytes(r.bytes)}`).join(', ')}), then the event's LevelDB write is fsynced and committed.json ` +
        'replaced (temp file, fsync, rename, directory fsync), against a single file and a single fsync for the raw side. These are the guarantees the store promises ' +
        '(every blob durable before the event that names it, every event durable before committed.json says so); a few milliseconds per checkpoint, so no target is set there.',
    );
  }
  for (const r of rowsData.filter((x) => x.params >= 5e6)) {
    const ratio = median(r.ratios);
    const hashMs = median(r.hashSeconds) * 1000;
    const storeMs = median(r.storeSeconds) * 1000;
    const ioMs = median(r.blobIoOnlySeconds) * 1000;
    const rawMs = median(r.rawSeconds) * 1000;
    notes.push(
      `${fmt(r.params / 1e6)}M parameters: store ${fmt(storeMs)} ms = content addressing (SHA-256 of every byte once, ${fmt(hashMs)} ms on one core, plus the weights hash ` +
        `over a third of them) overlapped with the blob files' group commit (${fmt(ioMs)} ms alone, raw ${fmt(rawMs)} ms), then the synced event. ` +
        (ratio >= 0.6
          ? `Ratio ${fmt(ratio, 3)}: target met.`
          : `Ratio ${fmt(ratio, 3)}: the target 0.6 is missed by ${fmt(0.6 - ratio, 2)}. Hashing runs on the main thread at ~1.4 GB/s while raw writes go at ` +
            `${fmt(r.bytes / (rawMs / 1000) / 1e6)} MB/s here, so the store can only reach raw speed if the hashing runs beside the writes on the second core: ` +
            'worker threads hashing tensors whose bytes are captured into SharedArrayBuffers (no copy) would close it.'),
    );
  }
  notes.push(
    'The disk of this machine is virtual and shared: the same write can take 100 ms or 400 ms depending on what was written before (it slows down after a few GB), ' +
      'which is why both sides keep their files until a size is done and the ratio of each alternating pair is what is reported, with its range.',
  );
  return {
    name: 'checkpoint-throughput',
    title: '2. Checkpoint commit throughput',
    method:
      'Dense models (4 layers, kernels and biases) of about 100K, 1M, 10M and 50M parameters; an Adam checkpoint is the weights plus m and v, 3 × params float32. ' +
      "The store side does what the driver's commitCheckpoint does after reading the tensors out of tfjs: the weights hash, every tensor stored as a content-addressed blob " +
      '(one group commit per tensor list: temp files written while the tensors are hashed, then all fsynced, renamed into blobs/, and each directory fsynced), ' +
      'then the `checkpoint.committed` event appended with `sync: true` (LevelDB fsync + committed.json). "blob I/O only" is that group commit alone with the hashes precomputed. ' +
      'The raw side writes the same bytes into one file with `fs.promises` writeFile per tensor and one fsync. Same disk (the bench/.work scratch folder), alternating, ' +
      'each repetition with new tensor contents (so no blob is deduplicated), `sync` before each measurement, both sides keeping what they wrote until the size is done, ' +
      'median ratio of the pairs.',
    tables: [table],
    targets,
    charts: [{ file: chart, alt: 'checkpoint commit throughput' }],
    notes,
    data,
  };
});
