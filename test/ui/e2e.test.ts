// The dashboard end to end in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core, which never downloads a browser): the runs list, a run's chart with one point
// per logged step, time travel to a checkpoint, a branch from it through the form (shown with its
// parent), its export and a replay check, a live training whose step count grows on screen, and a
// crashed run resumed from its Resume button.
// Without Chromium this file FAILS (CI installs it: see .ci/run); set RETRACE_CHROMIUM to use
// another binary. Screenshots go to $TMPDIR/retrace-ui-e2e/; with UPDATE_UI_SCREENSHOT=1 the run
// page is also written to docs/ui-screenshot.png.
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/chaos/harness.js';
import { readRun } from '../../src/run/inspect.js';
import { train } from '../../src/run/train.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, ROOT, postJson, removeTempDirs, tempDir, useToken } from './helpers.js';

const CHROMIUM = process.env.RETRACE_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];
const SHOTS = path.join(tmpdir(), 'retrace-ui-e2e');

let dir: string;
let server: UiServer;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: the dashboard's end-to-end tests need it. Install it with ` +
        '`apt-get update && apt-get install -y chromium` (CI does, in .ci/run) or point RETRACE_CHROMIUM at a Chromium binary.',
    );
  }
  dir = await tempDir('retrace-ui-e2e-');
  // A short warmup, so the chart has more than one state band to label.
  await train({ store: path.join(dir, 'store'), config: { ...IRIS, warmupSteps: 8, runId: 'iris-a' }, command: 'test' });
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 250, exportDir: path.join(dir, 'exports') });
  useToken(server.token);
  context = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 800 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  page.setDefaultTimeout(20_000);
  await mkdir(SHOTS, { recursive: true });
});

afterAll(async () => {
  if (page && (globalThis as { __uiFailed?: boolean }).__uiFailed) await page.screenshot({ path: path.join(SHOTS, 'failure.png') }).catch(() => {});
  await context?.close();
  await server?.close();
  await removeTempDirs();
});

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    (globalThis as { __uiFailed?: boolean }).__uiFailed = true;
    throw err;
  }
}

const attr = (selector: string, name: string) => page.locator(selector).getAttribute(name);

describe('retrace ui in Chromium', () => {
  it('lists the runs and opens one: one chart point per logged step, labelled state bands, checkpoints', () =>
    guarded(async () => {
      // Without the token the page is a 401 saying how to open it; the URL retrace ui prints moves
      // the token into a cookie and out of the address bar.
      const bare = await page.goto(server.url);
      expect(bare?.status()).toBe(401);
      await expect(page.locator('body').textContent()).resolves.toContain('?token=');
      // Chromium logs the 401 itself as a console error: that one is expected.
      expect(pageErrors.every((e) => /401/.test(e))).toBe(true);
      pageErrors.length = 0;
      await page.goto(server.openUrl);
      expect(page.url()).toBe(server.url);
      await page.waitForSelector('body[data-ready="1"]');
      const row = page.locator('li.run-row[data-run-id="iris-a"]');
      await expect(row.textContent()).resolves.toContain('stopped · budget');
      await row.locator('a.run-link').click();
      await page.waitForURL(/#\/run\/iris-a$/);
      const history = await readRun(server.store, 'iris-a');
      const steps = history.records.filter((r) => r.type === 'step.finished').length;
      await page.waitForSelector(`#chart[data-points="${steps}"]`);
      expect(await attr('#chart', 'data-checkpoints')).toBe(String(history.checkpoints.length));
      const bands = JSON.parse((await attr('#chart', 'data-bands')) ?? '[]') as Array<{ state: string }>;
      expect(bands.map((b) => b.state)).toEqual(['warmup', 'training', 'stopped']);
      await expect(page.locator('#bands-text').textContent()).resolves.toMatch(/warmup 0–8 → training 8–75 → stopped at 75/);
      expect(await page.locator('#chart canvas').count()).toBe(1);
      await expect(page.locator('#run-step').getAttribute('data-step')).resolves.toBe(String(steps));
      // The filter narrows the list.
      await page.fill('#filter', 'no-such-thing');
      await page.waitForSelector('#runs .empty-row');
      await page.fill('#filter', 'iris');
      await page.waitForSelector('li.run-row[data-run-id="iris-a"]');
    }));

  it('time travel: a checkpoint, a click on the chart and the slider show the state folded to that event', () =>
    guarded(async () => {
      const history = await readRun(server.store, 'iris-a');
      const ckpt2 = history.checkpointByIndex(2)!;
      await page.click('#ckpt-buttons button.ckpt[data-index="2"]');
      await page.waitForSelector(`#state-body[data-seq="${ckpt2.seq}"]`);
      expect(await attr('#nearest-checkpoint', 'data-index')).toBe('2');
      expect(await attr('#point-label', 'data-point')).toBe('ckpt:2');
      await expect(page.locator('#around tr.current').textContent()).resolves.toContain('checkpoint.committed');
      // A click in the middle of the chart selects the step under it.
      const over = page.locator('#chart .u-over');
      const box = (await over.boundingBox())!;
      await page.mouse.click(box.x + box.width * 0.3, box.y + box.height * 0.6);
      await page.waitForSelector(`#state-body:not([data-seq="${ckpt2.seq}"])`);
      await expect(page.locator('#state-body .event-type').textContent()).resolves.toMatch(/step\.finished|checkpoint\.committed/);
      // The slider: Home goes to event 0 (idle, before checkpoint 0).
      await page.focus('#slider');
      await page.keyboard.press('Home');
      await page.waitForSelector('#state-body[data-seq="0"][data-state="idle"]');
      await page.click('#ckpt-buttons button.ckpt[data-index="2"]');
      await page.waitForSelector(`#state-body[data-seq="${ckpt2.seq}"]`);
    }));

  it('branches from the checkpoint through the form; the branch runs in the server and shows with its parent', () =>
    guarded(async () => {
      await page.click('#branch-btn');
      await page.fill('#branch-form [data-key="lr"]', '0.05');
      await page.fill('#branch-form [data-key="runId"]', 'iris-ui-branch');
      await page.fill('#branch-form [name="extra"]', '{"plateauPatience": 1, "lrFactor": 0.3}');
      await page.click('#branch-form button[type="submit"]');
      await page.waitForURL(/#\/run\/iris-ui-branch$/);
      await page.waitForSelector('li.run-row[data-run-id="iris-ui-branch"][data-parent="iris-a"]');
      await expect(page.locator('li.run-row[data-run-id="iris-ui-branch"] .point').textContent()).resolves.toContain('@ckpt:2');
      // No budget override: it continues its parent's schedule, the 38 steps (75 − 37) the parent
      // had left after ckpt:2, and is drawn over its parent.
      await page.waitForSelector('#run-step[data-step="38"]', { timeout: 40_000 });
      await page.waitForSelector('#run-badges .badge.state-stopped');
      await page.waitForSelector('#chart[data-runs="iris-ui-branch,iris-a"]');
      expect(await attr('#chart', 'data-points')).toBe('38');
      await expect(page.locator('#overlays').textContent()).resolves.toContain('parent: iris-a');
      await page.click('#ckpt-buttons button.ckpt.best');
      await page.waitForSelector('#state-body[data-state="stopped"], #state-body[data-state="training"], #state-body[data-state="warmup"]');
      await page.mouse.move(0, 0);
      await page.locator('#toast').evaluate((t: unknown) => (t as { replaceChildren(): void }).replaceChildren());
      await page.waitForTimeout(300);
      const shot = path.join(SHOTS, 'run-page.png');
      await page.screenshot({ path: shot });
      if (process.env.UPDATE_UI_SCREENSHOT === '1') await copyFile(shot, path.join(ROOT, 'docs', 'ui-screenshot.png'));
    }));

  it('exports the selected checkpoint and verifies the replay', () =>
    guarded(async () => {
      const index = await attr('#nearest-checkpoint', 'data-index');
      await page.click('#export-btn');
      await page.waitForSelector('#export-result');
      const out = await attr('#export-result', 'data-out');
      expect(out).toBe(path.join(dir, 'exports', `iris-ui-branch-ckpt${index}`));
      expect(existsSync(path.join(out!, 'model.json'))).toBe(true);
      await page.waitForSelector('#run-badges .badge.state-exported');
      await page.click('#replay-btn');
      await page.waitForSelector('#replay-status[data-status="done"]', { timeout: 40_000 });
      expect(await attr('#replay-status', 'data-identical')).toBe('true');
      await expect(page.locator('#replay-status').textContent()).resolves.toMatch(/Replay identical: \d+ events verified/);
    }));

  it('shows a live run: its step count and progress grow on screen, and it can be stopped', () =>
    guarded(async () => {
      // A budget far beyond the test: it is stopped from the page once it has been seen growing.
      const res = await postJson(server.url, '/api/train', { config: { ...IRIS, stopPoint: 2000, runId: 'iris-live' } });
      expect(res.status).toBe(202);
      await page.goto(`${server.url}#/run/iris-live`);
      await page.waitForSelector('li.run-row[data-run-id="iris-live"][data-live="1"]');
      const seen = new Set<number>();
      const until = Date.now() + 30_000;
      while (seen.size < 3 && Date.now() < until) {
        const step = Number(await attr('#run-step', 'data-step'));
        if (step > 0) seen.add(step);
        await page.waitForTimeout(150);
      }
      const steps = [...seen];
      expect(steps.length).toBeGreaterThanOrEqual(3);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      const points = Number(await attr('#chart', 'data-points'));
      expect(points).toBeGreaterThan(0);
      const progress = await page.locator('#run-progress').evaluate((p: unknown) => ({ value: (p as { value: number }).value, max: (p as { max: number }).max }));
      expect(progress.max).toBe(Math.ceil((120 * 2000) / (16 * 4)) * 4);
      expect(progress.value).toBeGreaterThan(0);
      await expect(page.locator('#run-badges').textContent()).resolves.toContain('live');
      await page.click('#stop-job');
      await page.waitForSelector('#run-badges .badge.state-stopped', { timeout: 30_000 });
      await expect(page.locator('#run-badges').textContent()).resolves.toContain('interrupted');
      expect(pageErrors).toEqual([]);
    }));

  it('offers Resume for a crashed run (killed mid-training, no process holds it) and resumes it from the page', () =>
    guarded(async () => {
      const args = ['--dataset', 'iris', '--model', 'mlp', '--backend', 'wasm', '--batch-size', '16', '--stop-point', '10', '--checkpoints', '4', '--seed', '42'];
      const killed = await runCli(['train', ...args, '--run-id', 'iris-crashed', '--store', path.join(dir, 'store'), '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 30 } });
      expect(killed.signal).toBe('SIGKILL');
      // A finished run offers no resume.
      await page.goto(`${server.url}#/run/iris-a`);
      await page.locator('#point-label', { hasText: /^iris-a@/ }).waitFor();
      expect(await page.locator('#resume-btn').isHidden()).toBe(true);
      await page.goto(`${server.url}#/run/iris-crashed`);
      await page.waitForSelector('#resume-btn:not([hidden])', { timeout: 30_000 });
      await page.click('#resume-btn');
      await page.waitForSelector('#run-step[data-step="75"]', { timeout: 40_000 });
      await page.waitForSelector('#run-badges .badge.state-stopped', { timeout: 30_000 });
      expect(await page.locator('#resume-btn').isHidden()).toBe(true);
      expect(pageErrors).toEqual([]);
    }));
});
