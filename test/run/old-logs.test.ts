// Logs made by an earlier release keep their meaning: test/fixtures/rules1-store was made by
// retrace 0.1.0 (rules 1, see test/fixtures/make-rules1-store.ts), test/fixtures/pre-seam-store by
// the release before the storage seam (schema version 1, one blob per tensor, no read index or
// run summary; see test/fixtures/make-pre-seam-store.ts). Their runs must still pass fsck (every
// logged transition and stored snapshot is what folding the log gives), replay bit-exactly, and
// show the same state as they did then, whatever later releases changed.
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { runCli } from '../../src/chaos/harness.js';
import { withStore } from '../../src/run/common.js';
import { lightRecord } from '../../src/ui/view.js';
import { readLog, showState } from '../../src/run/inspect.js';
import { replay } from '../../src/run/replay.js';
import { tempDir } from './helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe.each([
  { fixture: 'rules1-store', made: 'retrace 0.1.0 (rules 1)', RUNS: ['pl', 'plb', 'int', 'exp', 'es'] },
  { fixture: 'pre-seam-store', made: 'the release before the storage seam (schema 1)', RUNS: ['pl', 'plb', 'int', 'exp', 'es', 'div'] },
])('a store made by $made', ({ fixture, RUNS }) => {
const FIXTURE = path.join(FIXTURES, fixture);
let store: string;
let expected: Record<string, unknown>;

beforeAll(async () => {
  // A copy: readers write their private copies under the store's tmp/.
  store = path.join(await tempDir(), 'store');
  await cp(path.join(FIXTURE, 'store'), store, { recursive: true });
  expected = JSON.parse(await readFile(path.join(FIXTURE, 'expected.json'), 'utf8')) as Record<string, unknown>;
});

  it('passes fsck: the machine folds every old log to its logged transitions and stored snapshots', async () => {
    const report = await fsck(store);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.runs.map((r) => r.runId).sort()).toEqual([...RUNS].sort());
  });

  it('shows the same state for every run as the release that made it did', async () => {
    for (const runId of RUNS) {
      const { around: _around, ...view } = await showState(runId, { store });
      void _around;
      // Every answer that release gave is the same; later releases may add fields (`schedule`, a
      // checkpoint's `name`), but the machine's context of an old run is exactly what it was.
      const now = JSON.parse(JSON.stringify(view)) as Record<string, unknown>;
      for (const [key, value] of Object.entries(expected[runId] as Record<string, unknown>)) {
        if (key === 'context' || value === null || typeof value !== 'object') expect(now[key], `${runId}.${key}`).toEqual(value);
        else expect(now[key], `${runId}.${key}`).toMatchObject(value);
      }
    }
  });

  it.each(RUNS)('replays run %s bit-exactly with the rules it was made with', async (runId) => {
    const result = await replay(runId, { store, verify: true });
    expect(result.message).toBeNull();
    expect(result.identical).toBe(true);
    expect(result.eventsVerified).toBeGreaterThan(3);
  });
});

describe('a diverged run of the store made before the storage seam, shown as JSON', () => {
  it('keeps its NaN and Infinity losses as the strings the log holds in `log --json` and the dashboard\'s events (never null)', async () => {
    const store = path.join(await tempDir(), 'store');
    await cp(path.join(FIXTURES, 'pre-seam-store', 'store'), store, { recursive: true });
    const res = await runCli(['log', 'div', '--json', '--type', 'step.finished', '--store', store], { cwd: ROOT });
    const losses = res.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { data: { loss: unknown } }).data.loss);
    expect(losses).not.toContain(null);
    expect(losses.filter((l) => typeof l === 'string').length).toBeGreaterThan(0);
    for (const l of losses) expect(typeof l === 'number' || ['NaN', 'Infinity', '-Infinity'].includes(l as string)).toBe(true);
    const light: unknown[] = [];
    await withStore({ store }, async (s) => {
      for await (const r of readLog(s, 'div', { types: ['step.finished'] })) light.push((lightRecord(r).data as { loss: unknown }).loss);
    });
    expect(light).toEqual(losses);
  });
});

