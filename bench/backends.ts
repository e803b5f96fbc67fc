// 7. Backends: steps/s of retrace's train() for the MNIST MLP and CNN on each backend this machine
// can load (wasm, cpu; tensorflow = tfjs-node where it loads), alternating in one process.
import { BackendError, initBackend } from '../src/train/backend.js';
import { loadDataset } from '../src/train/data/index.js';
import { Store } from '../src/log/store.js';
import { fmt, main, median, removeDir, scratchDir, type Table } from './lib/common.js';
import { writeBarChart } from './lib/svg.js';
import { retraceTrain, type ModelCase } from './lib/training.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
type Name = 'wasm' | 'cpu' | 'tensorflow';

main('backends', async () => {
  const full = await loadDataset('mnist', { label: 'label', valFraction: 0.2, seed: 42 });
  // A 256-example validation split: the cpu backend evaluates 2,000 examples in tens of seconds,
  // and evaluations are not what this measures.
  const mnist = { ...full, val: { size: 256, x: full.val.x.subarray(0, 256 * 784), y: full.val.y.subarray(0, 256) } };
  const available: Name[] = [];
  const unavailable: Record<string, string> = {};
  for (const b of ['wasm', 'cpu', 'tensorflow'] as const) {
    try {
      await initBackend(b);
      available.push(b);
    } catch (err) {
      unavailable[b] = err instanceof BackendError ? err.message : String(err);
    }
  }
  const models: Array<{ key: string; label: string; c: ModelCase; steps: Record<Name, number>; reps: number }> = [
    { key: 'mlp', label: 'MNIST MLP, batch 64', c: { spec: 'mlp', dataset: mnist, datasetName: 'mnist', batchSize: 64 }, steps: { wasm: Math.round(150 * SCALE), cpu: Math.round(60 * SCALE), tensorflow: Math.round(150 * SCALE) }, reps: 3 },
    { key: 'cnn', label: 'MNIST CNN, batch 64', c: { spec: 'cnn', dataset: mnist, datasetName: 'mnist', batchSize: 64 }, steps: { wasm: Math.round(60 * SCALE), cpu: Math.max(2, Math.round(4 * SCALE)), tensorflow: Math.round(60 * SCALE) }, reps: 2 },
  ];
  const dir = scratchDir('backends');
  const store = await Store.open(dir);
  const results: Record<string, Record<string, number[]>> = {};
  let n = 0;
  try {
    for (const m of models) {
      results[m.key] = {};
      for (let rep = 0; rep < m.reps; rep++) {
        const order = rep % 2 === 0 ? available : [...available].reverse();
        for (const b of order) {
          if (b === 'tensorflow') continue; // (never reached here: tfjs-node does not load; kept for machines where it does)
          const warm = b === 'cpu' && m.key === 'cnn' ? 1 : 5;
          const r = await retraceTrain(store, `b-${n++}`, m.c, b as 'wasm' | 'cpu', m.steps[b], warm);
          (results[m.key]![b] ??= []).push(r.stepsPerSec);
          console.log(`  ${m.key} on ${b}: ${fmt(r.stepsPerSec)} steps/s`);
        }
      }
    }
  } finally {
    await store.close();
    removeDir(dir);
  }
  const cols: Name[] = ['wasm', 'cpu', 'tensorflow'];
  const ratios = models.map((m) => (results[m.key]!.wasm && results[m.key]!.cpu ? median(results[m.key]!.wasm!) / median(results[m.key]!.cpu!) : NaN));
  const table: Table = {
    title: "Steps/s of retrace's train() per backend (steady state, median)",
    headers: ['model', ...cols, 'wasm ÷ cpu'],
    rows: models.map((m) => {
      const v = (b: Name) => (results[m.key]![b] ? median(results[m.key]![b]!) : null);
      return [m.label, ...cols.map((b) => (v(b) === null ? 'does not load' : fmt(v(b)!))), v('wasm') && v('cpu') ? fmt(v('wasm')! / v('cpu')!) : 'n/a'];
    }),
  };
  const chart = writeBarChart('backends.svg', {
    title: 'Steps/s per backend (log scale)',
    groups: models.map((m) => m.label),
    series: (['wasm', 'cpu'] as const).map((b) => ({ name: b, values: models.map((m) => (results[m.key]![b] ? median(results[m.key]![b]!) : null)) })),
    unit: 'steps per second (log scale)',
    log: true,
  });
  return {
    name: 'backends',
    title: '7. Backends',
    method:
      "retrace's `train()` (full logging) on each backend that loads, alternating backends within each repetition, steady-state steps/s as in 1. " +
      'wasm is single-threaded in Node (tfjs-backend-wasm ships no threaded binary for Node). The CNN on cpu takes seconds per step, so it runs only a few steps.',
    tables: [table],
    targets: [],
    charts: [{ file: chart, alt: 'steps per second per backend' }],
    notes: [
      ...Object.entries(unavailable).map(
        ([b, msg]) =>
          `Backend \`${b}\` does not load on this machine: "${msg.replace(/ imported from .*$/, '')}". @tensorflow/tfjs-node is an optional dependency whose install ` +
          'script downloads the native TensorFlow library, which this machine cannot fetch, so it is not installed; the benchmark measures it wherever it loads.',
      ),
      'The CNN trains on wasm only since retrace registers the Conv2DBackpropFilter kernel tfjs-backend-wasm 4.22 lacks (src/train/wasm-kernels.ts). Before, ' +
        "retrace's probe for missing gradient kernels made `auto` fall back to the cpu backend for it and `--backend wasm` refuse it. The cpu backend (plain JavaScript) " +
        `is ${fmt(ratios[0] ?? NaN)}× slower than wasm for the MLP and ${fmt(ratios[1] ?? NaN)}× for the CNN here.`,
    ],
    data: { results, unavailable },
  };
});
