// 5. Seek and list: reads that do not grow with what is stored. The machine state at an event
// (`showState`, what `retrace state --at` runs) on runs of 1K to 1M events, the `runs` listing of
// stores of 3 to 1,000 runs, and the same two commands as whole processes. Every target is a ratio
// of two sides measured alternately in this one process (the machine is shared and noisy). Logs
// are generated through the real driver, emitter and store with a session that computes nothing
// (lib/synthetic.ts).
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Limiter } from '../src/log/limiter.js';
import { Store } from '../src/log/store.js';
import { listRuns, showState } from '../src/run/inspect.js';
import { fmt, main, median, removeDir, ROOT, scratchDir, spread, type Table, type Target } from './lib/common.js';
import { syntheticRun } from './lib/synthetic.js';
import { writeBarChart } from './lib/svg.js';

const SIZES = (process.env.BENCH_SEEK_SIZES ?? '1000,10000,100000,1000000').split(',').map(Number);
const LIST_RUNS = Number(process.env.BENCH_LIST_RUNS ?? 1000);
const STEPS_PER_EPOCH = 1000;
const PAIRS = Number(process.env.BENCH_SEEK_PAIRS ?? 9);
const CLI = path.join(ROOT, 'bin', 'retrace.js');

/** Before the storage seam (docs/benchmarks.md of 2026-11-29): every read scanned the whole log. */
const BEFORE = {
  stateMs: { 10000: 119, 100000: 967, 1000000: 7505 } as Record<number, number>,
  stateRatio: 63.2,
  listMs: 5499,
  listRuns: 1000,
};

/** A fixed pseudo-random sequence of event numbers in [1, n). */
function points(n: number, count: number, seed = 2463534242): number[] {
  let s = seed;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out.push(1 + ((s >>> 0) % (n - 1)));
  }
  return out;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** `pairs` ratios b/a, the two sides alternating (ABBA) so drifting load cancels out. */
async function alternate(pairs: number, a: (i: number) => Promise<unknown>, b: (i: number) => Promise<unknown>): Promise<{ a: number[]; b: number[]; ratios: number[] }> {
  const out = { a: [] as number[], b: [] as number[], ratios: [] as number[] };
  await a(0); // warm both paths
  await b(0);
  for (let i = 0; i < pairs; i++) {
    let ta: number;
    let tb: number;
    if (i % 2 === 0) {
      ta = await time(() => a(i));
      tb = await time(() => b(i));
    } else {
      tb = await time(() => b(i));
      ta = await time(() => a(i));
    }
    out.a.push(ta);
    out.b.push(tb);
    out.ratios.push(tb / ta);
  }
  return out;
}

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`retrace ${args.join(' ')} failed: ${r.stderr}`);
}

/** A store of `n` small runs: `originals` trained, the rest copies (a closed run's folder is its whole state). */
async function listStore(dir: string, n: number): Promise<Store> {
  const store = await Store.open(dir);
  const originals = Math.min(20, n);
  for (let i = 0; i < originals; i++) await syntheticRun(store, `run-${String(i).padStart(4, '0')}`, { stepsPerEpoch: 10, checkpoints: 2 });
  for (let i = originals; i < n; i++) {
    await fsp.cp(path.join(dir, 'runs', `run-${String(i % originals).padStart(4, '0')}`), path.join(dir, 'runs', `run-${String(i).padStart(4, '0')}`), { recursive: true });
  }
  return store;
}

main('seek', async () => {
  const dir = scratchDir('seek');
  const store = await Store.open(dir);
  const data: Record<string, unknown> = {};
  const targets: Target[] = [];
  const sizeRows: string[][] = [];
  const ratioRows: string[][] = [];
  const events: Record<number, number> = {};
  try {
    for (const size of SIZES) {
      const checkpoints = Math.max(1, Math.round(size / (STEPS_PER_EPOCH + 4)));
      let n = 0;
      const t0 = performance.now();
      await syntheticRun(store, `seek-${size}`, { stepsPerEpoch: STEPS_PER_EPOCH, checkpoints, onRecord: () => n++ });
      events[size] = n;
      sizeRows.push([fmt(n), fmt(checkpoints), fmt((performance.now() - t0) / 1000, 3)]);
      console.log(`  generated ${fmt(n)} events`);
    }
    const byName = (size: number) => `seek-${size}`;
    const smallLib = SIZES.find((s) => s === 10000) ?? SIZES[0]!;
    const bigLib = SIZES[SIZES.length - 1]!;

    // 1. The library call at pseudo-random points, small and big run alternating.
    const atSmall = points(events[smallLib]!, PAIRS + 1, 11);
    const atBig = points(events[bigLib]!, PAIRS + 1, 13);
    const lib = await alternate(
      PAIRS,
      (i) => showState(byName(smallLib), { store, at: String(atSmall[i]) }),
      (i) => showState(byName(bigLib), { store, at: String(atBig[i]) }),
    );
    const libRatio = spread(lib.ratios);
    ratioRows.push([
      `showState at a random event: ${fmt(events[bigLib])} ÷ ${fmt(events[smallLib])} events`,
      fmt(median(lib.a)),
      fmt(median(lib.b)),
      fmt(libRatio.median),
      `${fmt(libRatio.min)}–${fmt(libRatio.max)}`,
      `${fmt(BEFORE.stateRatio)} (${fmt(BEFORE.stateMs[1000000])} ms on 1,000,131 events)`,
    ]);
    targets.push({ what: `showState at an event of a ${fmt(events[bigLib])}-event run ÷ of a ${fmt(events[smallLib])}-event run`, target: '≤ 2', measured: `${fmt(libRatio.median)} (before: ${fmt(BEFORE.stateRatio)})`, met: libRatio.median <= 2 });
    data.showState = { small: byName(smallLib), big: byName(bigLib), ...lib };
    // Every run's time at its own points, for the table by size.
    const perSize: number[] = [];
    for (const size of SIZES) {
      const ats = points(events[size]!, 5, 17);
      const times: number[] = [];
      for (const at of ats) times.push(await time(() => showState(byName(size), { store, at: String(at) })));
      perSize.push(median(times));
    }
    sizeRows.forEach((row, i) => row.push(fmt(perSize[i]), BEFORE.stateMs[SIZES[i]!] === undefined ? '' : fmt(BEFORE.stateMs[SIZES[i]!])));

    // 2. The listing of 1,000 runs against reading 1,000 files of a summary's size.
    const listDir = scratchDir('list');
    const filesDir = scratchDir('files');
    const big = await listStore(listDir, LIST_RUNS);
    try {
      const one = await fsp.readFile(path.join(listDir, 'runs', 'run-0000', 'committed.json'));
      await fsp.mkdir(filesDir, { recursive: true });
      for (let i = 0; i < LIST_RUNS; i++) await fsp.writeFile(path.join(filesDir, `f-${i}.json`), one);
      const list = await alternate(
        Math.max(3, Math.floor(PAIRS / 2)),
        async () => {
          // As listRuns reads its runs: 16 at a time.
          const limiter = new Limiter(16);
          await Promise.all(Array.from({ length: LIST_RUNS }, (_, i) => limiter.run(async () => JSON.parse(await fsp.readFile(path.join(filesDir, `f-${i}.json`), 'utf8')))));
        },
        async () => {
          const runs = await listRuns({ store: big });
          if (runs.length !== LIST_RUNS || runs.some((r) => r.error)) throw new Error('listing failed');
        },
      );
      const r = spread(list.ratios);
      ratioRows.push([
        `listRuns of ${fmt(LIST_RUNS)} runs ÷ reading ${fmt(LIST_RUNS)} files of ${one.byteLength} bytes (both 16 at a time)`,
        fmt(median(list.a)),
        fmt(median(list.b)),
        fmt(r.median),
        `${fmt(r.min)}–${fmt(r.max)}`,
        `${fmt(BEFORE.listMs)} ms for ${fmt(BEFORE.listRuns)} runs`,
      ]);
      targets.push({ what: `listRuns of ${fmt(LIST_RUNS)} runs ÷ reading ${fmt(LIST_RUNS)} summary-sized files`, target: '≤ 3', measured: `${fmt(r.median)} (${fmt(median(list.b))} ms; before: ${fmt(BEFORE.listMs)} ms)`, met: r.median <= 3 });
      data.list = { runs: LIST_RUNS, summaryBytes: one.byteLength, ...list };
    } finally {
      await big.close();
    }

    // 3. Whole processes: `retrace state --at` on a 100K- and a 1K-event run, `retrace runs` on
    // 300 and 3 runs (process start-up alone is ~0.2 s, so both sides pay it).
    await store.close();
    const smallCli = SIZES.find((s) => s === 1000) ?? SIZES[0]!;
    const bigCli = SIZES.find((s) => s === 100000) ?? bigLib;
    const atS = points(events[smallCli]!, PAIRS + 1, 19);
    const atB = points(events[bigCli]!, PAIRS + 1, 23);
    const proc = await alternate(
      Math.max(3, Math.floor(PAIRS / 2)),
      async (i) => cli(['state', byName(smallCli), '--at', String(atS[i]), '--store', dir, '--json']),
      async (i) => cli(['state', byName(bigCli), '--at', String(atB[i]), '--store', dir, '--json']),
    );
    const pr = spread(proc.ratios);
    ratioRows.push([`\`retrace state --at\` process: ${fmt(events[bigCli])} ÷ ${fmt(events[smallCli])} events`, fmt(median(proc.a)), fmt(median(proc.b)), fmt(pr.median), `${fmt(pr.min)}–${fmt(pr.max)}`, '']);
    targets.push({ what: `\`retrace state --at\` process, ${fmt(events[bigCli])}-event ÷ ${fmt(events[smallCli])}-event run`, target: '≤ 1.5', measured: fmt(pr.median), met: pr.median <= 1.5 });
    data.stateProcess = proc;

    const few = scratchDir('list3');
    const many = scratchDir('list300');
    await (await listStore(few, 3)).close();
    await (await listStore(many, 300)).close();
    const runsProc = await alternate(
      Math.max(3, Math.floor(PAIRS / 2)),
      async () => cli(['runs', '--store', few, '--json']),
      async () => cli(['runs', '--store', many, '--json']),
    );
    const rr = spread(runsProc.ratios);
    ratioRows.push(['`retrace runs` process: 300 ÷ 3 runs', fmt(median(runsProc.a)), fmt(median(runsProc.b)), fmt(rr.median), `${fmt(rr.min)}–${fmt(rr.max)}`, '']);
    targets.push({ what: '`retrace runs` process, 300 runs ÷ 3 runs', target: '≤ 1.5', measured: fmt(rr.median), met: rr.median <= 1.5 });
    data.runsProcess = runsProc;
    removeDir(few);
    removeDir(many);
    removeDir(listDir);
    removeDir(filesDir);

    const sizeTable: Table = {
      title: '`state --at` (showState) by run size, checkpoints every 1,000 steps (median of 5 random events)',
      headers: ['events', 'checkpoints', 'generated in s', 'ms now', 'ms before the seam'],
      rows: sizeRows,
    };
    const ratioTable: Table = {
      title: 'Each target, the two sides alternating (ABBA), median of the per-pair ratios',
      headers: ['what', 'small side ms (median)', 'big side ms (median)', 'ratio', 'range', 'before'],
      rows: ratioRows,
    };
    const chart = writeBarChart('seek.svg', {
      title: '`state --at` by run size (ms, log scale)',
      groups: sizeRows.map((r) => `${r[0]} events`),
      series: [{ name: 'now', values: perSize }],
      unit: 'milliseconds (log scale)',
      log: true,
    });
    return {
      name: 'seek',
      title: '5. Seek and list',
      method:
        `Runs of about ${SIZES.map((s) => fmt(s)).join(', ')} events are generated through the real driver, emitter and store (lib/synthetic.ts: a session that computes nothing, ` +
        'so every record is what a real run writes, only the numbers are invented), one epoch checkpoint per 1,000 steps. Each target compares two sides measured ' +
        `alternately in this process (ABBA order, ${PAIRS} pairs or at least 3 for the slower ones, one warm-up call each): \`showState(run, {at})\` at pseudo-random events ` +
        'through a fresh read handle each time (as the CLI does); `listRuns` of a store of 1,000 runs (20 trained runs of 2 epochs of 10 steps, copied folder by folder) ' +
        "against reading and parsing 1,000 files the size of one run's committed.json; and whole `retrace state --at` and `retrace runs` processes (`node bin/retrace.js`).",
      tables: [ratioTable, sizeTable],
      targets,
      charts: [{ file: chart, alt: 'state --at time per run size' }],
      notes: [
        '`state --at` reads only what its answer needs (src/run/reader.ts): event 0 (run.created), the events from the nearest checkpoint before the point up to it ' +
          '(read backwards from the point; the checkpoint stores the machine snapshot), the evaluations through the index written in the same LevelDB batch as each ' +
          'record, and the events around the point. A reader no longer scans every key when it opens (one reverse seek for the last event and one read of the ' +
          'committed record); every range it reads is checked for gaps and checksums. What still grows: the evaluations listed (one per checkpoint) and the events ' +
          'between the nearest checkpoint and the point (at most one checkpoint interval). The whole-log checks are `retrace fsck`.',
        '`runs` reads one small file per run: the summary (state, step, best metric, parent, ...) each writer stores inside committed.json at every commit, so it ' +
          'describes exactly the committed event (src/run/summary.ts). A run that is being written, or whose writer died mid-training, is read from its log instead ' +
          '(its last checkpoint and the events after it).',
        `Before this change (the same benchmark on 2026-11-29): \`state --at\` took ${fmt(BEFORE.stateMs[1000000])} ms on a 1,000,131-event run, ` +
          `${fmt(BEFORE.stateRatio)}× the 10,046-event run, because it copied and scanned the whole log and validated every record; \`runs\` took ` +
          `${fmt(BEFORE.listMs)} ms for 1,000 runs (a LevelDB copied and opened per run).`,
      ],
      data: { ...data, events },
    };
  } finally {
    await store.close().catch(() => {});
    removeDir(dir);
  }
});
