// 8. The dashboard on large stores: time to the first chart drawn in headless Chromium, for the run
// list and a run's page, on a store of 300 runs with a 100K-event run against a store of 3 runs
// with a 1K-event run. Both servers run in this process; the page loads alternate between them.
import { existsSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { Store } from '../src/log/store.js';
import { startUiServer, type UiServer } from '../src/ui/server.js';
import { fmt, main, median, removeDir, scratchDir, spread, type Table, type Target } from './lib/common.js';
import { syntheticRun } from './lib/synthetic.js';

const CHROMIUM = process.env.RETRACE_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];
const PAIRS = Number(process.env.BENCH_DASHBOARD_PAIRS ?? 7);

interface Side {
  name: string;
  runs: number;
  bigRun: string;
  events: number;
  server: UiServer;
}

/** A store of `runs` runs: one of about `events` events (checkpoints every 1,000 steps), the rest small copies. */
async function makeStore(dir: string, runs: number, events: number): Promise<{ bigRun: string; events: number }> {
  const store = await Store.open(dir);
  let n = 0;
  try {
    await syntheticRun(store, 'long', { stepsPerEpoch: 1000, checkpoints: Math.max(1, Math.round(events / 1004)), onRecord: () => n++ });
    await syntheticRun(store, 'small-0000', { stepsPerEpoch: 10, checkpoints: 2 });
  } finally {
    await store.close();
  }
  for (let i = 1; i < runs - 1; i++) {
    await fsp.cp(path.join(dir, 'runs', 'small-0000'), path.join(dir, 'runs', `small-${String(i).padStart(4, '0')}`), { recursive: true });
  }
  return { bigRun: 'long', events: n };
}

// Times are the page's own: the ms since its navigation started (performance.now() in the page)
// when it first drew the list or a chart with points, which it records as `data-drawn-at`.

/** Milliseconds from navigation to the run list showing its first rows. */
async function listPaint(page: Page, side: Side): Promise<number> {
  await page.goto('about:blank'); // a fresh page load each time, never a same-document navigation
  await page.goto(side.server.url, { waitUntil: 'commit' });
  await page.waitForSelector('#runs[data-drawn-at]', { timeout: 120_000 });
  return Number(await page.locator('#runs').getAttribute('data-drawn-at'));
}

/** Milliseconds from navigation to a run's page drawing its first chart. */
async function chartPaint(page: Page, side: Side): Promise<number> {
  await page.goto('about:blank');
  await page.goto(`${side.server.url}#/run/${side.bigRun}`, { waitUntil: 'commit' });
  await page.waitForSelector('#chart[data-drawn-at]', { timeout: 120_000 });
  return Number(await page.locator('#chart').getAttribute('data-drawn-at'));
}

main('dashboard', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium, or set RETRACE_CHROMIUM)`);
  const smallDir = scratchDir('dash-small');
  const bigDir = scratchDir('dash-big');
  const small = await makeStore(path.join(smallDir, 'store'), 3, 1000);
  const big = await makeStore(path.join(bigDir, 'store'), 300, 100_000);
  const sides: Side[] = [];
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    for (const [name, dir, made, runs] of [['small', smallDir, small, 3], ['large', bigDir, big, 300]] as const) {
      const server = await startUiServer({ store: path.join(dir, 'store'), port: 0, exportDir: path.join(dir, 'exports') });
      sides.push({ name, runs, bigRun: made.bigRun, events: made.events, server });
    }
    const pages = await Promise.all(
      sides.map(async (s) => {
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page = await context.newPage();
        await page.goto(s.server.openUrl); // sets the token cookie
        await page.waitForSelector('body[data-ready="1"]');
        return page;
      }),
    );
    const measure = async (fn: (page: Page, side: Side) => Promise<number>) => {
      const out = { small: [] as number[], large: [] as number[], ratios: [] as number[] };
      await fn(pages[0]!, sides[0]!); // warm-up, both sides
      await fn(pages[1]!, sides[1]!);
      for (let i = 0; i < PAIRS; i++) {
        const order = i % 2 === 0 ? [0, 1] : [1, 0];
        const t: number[] = [];
        for (const k of order) t[k] = await fn(pages[k]!, sides[k]!);
        out.small.push(t[0]!);
        out.large.push(t[1]!);
        out.ratios.push(t[1]! / t[0]!);
      }
      return out;
    };
    const list = await measure(listPaint);
    const chart = await measure(chartPaint);
    const rl = spread(list.ratios);
    const rc = spread(chart.ratios);
    const targets: Target[] = [
      { what: 'dashboard run list, 300 runs ÷ 3 runs (time to the first rows, Chromium)', target: '≤ 1.5', measured: fmt(rl.median), met: rl.median <= 1.5 },
      { what: `dashboard run page, a ${fmt(sides[1]!.events)}-event run ÷ a ${fmt(sides[0]!.events)}-event run (time to the first chart drawn)`, target: '≤ 1.5', measured: fmt(rc.median), met: rc.median <= 1.5 },
    ];
    const table: Table = {
      title: 'Time to first paint in headless Chromium (ms, median; ratio: median of the per-pair ratios)',
      headers: ['page', 'small store', 'large store', 'ratio', 'range'],
      rows: [
        ['run list (3 vs 300 runs)', fmt(median(list.small)), fmt(median(list.large)), fmt(rl.median), `${fmt(rl.min)}–${fmt(rl.max)}`],
        [`run page (${fmt(sides[0]!.events)} vs ${fmt(sides[1]!.events)} events)`, fmt(median(chart.small)), fmt(median(chart.large)), fmt(rc.median), `${fmt(rc.min)}–${fmt(rc.max)}`],
      ],
    };
    return {
      name: 'dashboard',
      title: '8. The dashboard on large stores',
      method:
        'Two stores made through the real driver and store with a session that computes nothing (lib/synthetic.ts): a small one (3 runs, the longest of ' +
        `${fmt(sides[0]!.events)} events) and a large one (300 runs, the longest of ${fmt(sides[1]!.events)} events, checkpoints every 1,000 steps). ` +
        '`retrace ui` serves each from this process; one headless Chromium loads their pages alternately (ABBA, ' +
        `${PAIRS} pairs after one warm-up each); each time is the page's own clock (performance.now(), from the start of its navigation) when it first drew the run list's rows, and a run's chart with points.`,
      tables: [table],
      targets,
      charts: [],
      notes: [
        "The run list comes from each run's stored summary (one small file per run, src/run/summary.ts), not from reading every run's log. " +
          "A run's page draws first from an overview read without loading the log (src/ui/view.ts buildOverview: every evaluation, checkpoint and transition " +
          'from the index, at most 1,000 steps sampled evenly), then loads the full series behind it.',
      ],
      data: { list, chart, sides: sides.map((s) => ({ name: s.name, runs: s.runs, events: s.events })) },
    };
  } finally {
    await browser.close();
    for (const s of sides) await s.server.close();
    removeDir(smallDir);
    removeDir(bigDir);
  }
});
