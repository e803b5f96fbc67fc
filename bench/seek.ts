// 5. Seek and fold: the machine state at an arbitrary event (`retrace state --at`), for runs of
// 10K, 100K and 1M events, and the `runs` listing of a store with 1,000 runs. Logs are generated
// through the real driver, emitter and store with a session that computes nothing (lib/synthetic.ts).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Store } from '../src/log/store.js';
import { listRuns, showState, stateAt } from '../src/run/inspect.js';
import { parseRecord } from '../src/log/events.js';
import { RunHistory } from '../src/run/history.js';
import { fmt, main, median, removeDir, scratchDir, type Table, type Target } from './lib/common.js';
import { syntheticRun } from './lib/synthetic.js';
import { writeBarChart } from './lib/svg.js';

const SIZES = (process.env.BENCH_SEEK_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const LIST_RUNS = Number(process.env.BENCH_LIST_RUNS ?? 1000);
const STEPS_PER_EPOCH = 1000;

/** A fixed pseudo-random sequence of event numbers in [1, n). */
function points(n: number, count: number): number[] {
  let s = 2463534242;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out.push(1 + ((s >>> 0) % (n - 1)));
  }
  return out;
}

main('seek', async () => {
  const dir = scratchDir('seek');
  const store = await Store.open(dir);
  const rows: string[][] = [];
  const data: Record<string, unknown> = {};
  const targets: Target[] = [];
  const seekMs: number[] = [];
  const labels: string[] = [];
  try {
    for (const size of SIZES) {
      const checkpoints = Math.max(1, Math.round(size / (STEPS_PER_EPOCH + 4)));
      const runId = `seek-${size}`;
      let events = 0;
      const t0 = performance.now();
      await syntheticRun(store, runId, { stepsPerEpoch: STEPS_PER_EPOCH, checkpoints, onRecord: () => events++ });
      const genSeconds = (performance.now() - t0) / 1000;
      const times: number[] = [];
      const at = points(events, size >= 500_000 ? 2 : 5);
      for (const seq of at) {
        const t = performance.now();
        const view = await showState(runId, { store, at: String(seq) });
        times.push(performance.now() - t);
        if (view.seq !== seq) throw new Error('showState answered another event');
      }
      // Where the time goes, once: open (private copy + LevelDB open + key scan), read and verify
      // every record, validate every payload (zod), fold to the event.
      const t1 = performance.now();
      const log = await store.openRun(runId, 'read');
      const t2 = performance.now();
      const raws = [];
      for await (const r of log.read()) raws.push(r);
      const t3 = performance.now();
      const records = raws.map((r) => parseRecord(runId, r));
      const t4 = performance.now();
      stateAt(new RunHistory(runId, records), at[0]!);
      const t5 = performance.now();
      await log.close();
      const t6 = performance.now();
      const phases = { openMs: t2 - t1, readMs: t3 - t2, validateMs: t4 - t3, foldMs: t5 - t4, closeMs: t6 - t5 };
      const m = median(times);
      rows.push([fmt(events), fmt(checkpoints), fmt(genSeconds, 3), fmt(events / genSeconds), fmt(m), fmt(phases.openMs), fmt(phases.readMs), fmt(phases.validateMs), fmt(phases.foldMs + phases.closeMs)]);
      data[runId] = { events, checkpoints, generateSeconds: genSeconds, seekMs: times, at, phases };
      seekMs.push(m);
      labels.push(`${fmt(events)} events`);
      console.log(`  ${fmt(events)} events: generated in ${fmt(genSeconds)} s, state --at median ${fmt(m)} ms`);
    }
    const small = seekMs[0]!;
    const big = seekMs[seekMs.length - 1]!;
    targets.push({ what: `\`state --at\` on the ${labels[labels.length - 1]} run`, target: 'tens of ms, flat with size', measured: `${fmt(big)} ms (${fmt(big / small)}× the ${labels[0]} run)`, met: big < 100 && big / small < 3 });

    // 1,000 small runs for `runs`: 20 real ones (2 epochs of 10 steps), each then copied as closed
    // runs are (a run's folder is its whole state), which is 10x faster than training 1,000.
    const listDir = scratchDir('list');
    const listStore = await Store.open(listDir);
    let listMs: number[] = [];
    let genList = 0;
    try {
      const t0 = performance.now();
      const originals = Math.min(20, LIST_RUNS);
      for (let i = 0; i < originals; i++) await syntheticRun(listStore, `run-${String(i).padStart(4, '0')}`, { stepsPerEpoch: 10, checkpoints: 2 });
      for (let i = originals; i < LIST_RUNS; i++) {
        const from = path.join(listDir, 'runs', `run-${String(i % originals).padStart(4, '0')}`);
        await fsp.cp(from, path.join(listDir, 'runs', `run-${String(i).padStart(4, '0')}`), { recursive: true });
      }
      genList = (performance.now() - t0) / 1000;
      for (let i = 0; i < 1; i++) {
        const t = performance.now();
        const runs = await listRuns({ store: listStore });
        listMs.push(performance.now() - t);
        if (runs.length !== LIST_RUNS || runs.some((r) => r.error)) throw new Error('listing failed');
      }
    } finally {
      await listStore.close();
      removeDir(listDir);
    }
    const list = median(listMs);
    targets.push({ what: `\`runs\` with ${fmt(LIST_RUNS)} runs`, target: 'tens of ms', measured: `${fmt(list)} ms (${fmt(list / LIST_RUNS, 3)} ms per run)`, met: list < 100 });
    data.list = { runs: LIST_RUNS, generateSeconds: genList, listMs };
    const table: Table = {
      title: '`state --at` (showState) on synthetic runs, checkpoints every 1,000 steps',
      headers: ['events', 'checkpoints', 'generated in s', 'events/s written', 'state --at ms (median)', 'open ms', 'read + verify ms', 'validate (zod) ms', 'fold + close ms'],
      rows,
    };
    const listTable: Table = {
      title: `\`runs\` (listRuns) on a store of ${fmt(LIST_RUNS)} runs`,
      headers: ['runs', 'listing ms', 'ms per run'],
      rows: [[fmt(LIST_RUNS), fmt(list), fmt(list / LIST_RUNS, 3)]],
    };
    const chart = writeBarChart('seek.svg', {
      title: 'Time to show the state at an event (ms, log scale)',
      groups: labels,
      series: [{ name: 'state --at', values: seekMs }],
      unit: 'milliseconds (log scale)',
      log: true,
    });
    return {
      name: 'seek',
      title: '5. Seek and fold',
      method:
        'Runs of about 10K, 100K and 1M events are generated through the real driver, emitter and store (lib/synthetic.ts: a session that computes nothing, ' +
        'so every record is what a real run writes, only the numbers are invented), one epoch checkpoint per 1,000 steps. `showState(run, {at})` — what ' +
        '`retrace state --at` runs — is timed at fixed pseudo-random events (5, or 2 on the largest run), through a fresh read handle each time, as the CLI does; ' +
        'one more read is split into its phases. The listing builds a store of ' +
        `${fmt(LIST_RUNS)} runs (20 trained runs of 2 epochs of 10 steps, copied folder by folder) and times \`listRuns\`.`,
      tables: [table, listTable],
      targets,
      charts: [{ file: chart, alt: 'state --at time per run size' }],
      notes: [
        `\`state --at\` is linear in the length of the log, ${fmt((big * 1000) / (data[`seek-${SIZES[SIZES.length - 1]}`] as { events: number }).events, 2)} µs per event on the largest run: ` +
          '`readRun` opens the run (a private copy of the LevelDB, whose opening scans every key ' +
          'to check the log has no gap), reads and verifies every record (CRC, seq), validates every payload with zod, and only then folds, from the nearest checkpoint. ' +
          'The fold itself is flat (the checkpoint stores the machine snapshot). Not fixed here; what would make it flat:',
        '1. read only what the answer needs: record 0, the nearest checkpoint at or before the event and the records from it to the event. The checkpoint can be found by ' +
          'reading backwards in chunks from the event (bounded by one epoch of events), or in O(1) from an index of checkpoint seqs kept in its own key range and written in ' +
          "the same atomic batch as each checkpoint record; 2. the view's list of evaluations, today every `eval.finished` up to the event, from the same kind of index; " +
          "3. a reader that checks the ranges it reads (it already does) and the committed mark with one reverse seek, instead of scanning every key when it opens. " +
          'Items 1–2 change src/run/history.ts and inspect.ts; item 3 changes the log’s integrity design (src/log/run-log.ts), which is being reworked for the chaos tests.',
        "`runs` costs a few milliseconds per run whatever the runs' length, because each run is a LevelDB to copy and open; with 1,000 runs that is seconds. " +
          'What would make it tens of milliseconds: a small per-run summary file (state, step, best checkpoint, parent) rewritten with committed.json after each synced ' +
          'append and checked against it (same seq and crc), so that listing reads one small file per run and opens a LevelDB only when the summary is stale.',
      ],
      data,
    };
  } finally {
    await store.close();
    removeDir(dir);
  }
});
