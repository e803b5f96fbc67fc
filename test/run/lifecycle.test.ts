// Issue #9: lifecycle rules (rules 2). Exporting observes a run and does not end it; interrupt
// checkpoints are named apart (int:N) and epoch checkpoints keep their indices; a stopped run can
// be trained longer in place (resume --stop-point); a branch inherits its parent's controller
// state and schedule. Real runs on iris, real LevelDB, real files.
import { cp } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import { fsck } from '../../src/chaos/fsck.js';
import { ConfigError, type ConfigInput } from '../../src/config.js';
import { type LogRecord } from '../../src/log/events.js';
import { branch } from '../../src/run/branch.js';
import { checkpointsOf } from '../../src/run/checkpoints.js';
import { exportRun } from '../../src/run/export.js';
import { PointError, type RunHistory } from '../../src/run/history.js';
import { stateAt } from '../../src/run/inspect.js';
import { replay } from '../../src/run/replay.js';
import { resume, ResumeRefusedError } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { IRIS, tempDir, history } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** An AbortSignal that fires once the run has done `step` steps (as Ctrl-C would). */
function stopAt(step: number) {
  const controller = new AbortController();
  return {
    signal: controller.signal,
    onRecord: (r: LogRecord) => {
      if (r.type === 'step.finished' && r.data.step === step) controller.abort('api');
    },
  };
}

/** The step facts by absolute step (a branch's steps are offset by its origin). */
function stepsByAbsolute(h: RunHistory): Map<number, { loss: unknown; lr: number }> {
  const out = new Map<number, { loss: unknown; lr: number }>();
  for (const r of h.records) if (r.type === 'step.finished') out.set(h.created.origin.step + r.data.step, { loss: r.data.loss, lr: r.data.lr });
  return out;
}

function epochCheckpoints(h: RunHistory): Array<[number, string]> {
  return h.checkpoints.filter((c) => c.data.kind === 'epoch').map((c) => [h.created.origin.step + c.data.step, c.data.weightsHash]);
}

afterAll(() => killAllChildren());

let store: string;
let straight: Awaited<ReturnType<typeof train>>;
// IRIS: 120 examples × 10 passes / batch 8 = 150 steps; 4 checkpoints at steps 37, 75, 112, 150.
beforeAll(async () => {
  store = await tempDir();
  straight = await train({ store, config: { ...IRIS, runId: 'straight' } });
});

describe('export and interrupt checkpoints', () => {
  it('exports an interrupted run as int:1 without ending it; resumed, it numbers checkpoints like the uninterrupted run', async () => {
    const cut = await train({ store, config: { ...IRIS, runId: 'cut' }, ...stopAt(50) });
    expect(cut).toMatchObject({ state: 'stopped', stopReason: 'interrupted', step: 50 });
    const out = path.join(await tempDir(), 'model');
    const exported = await exportRun('cut', { store, checkpoint: 'last', out });
    expect(exported).toMatchObject({ checkpoint: 1, checkpointName: 'int:1', checkpointKind: 'interrupt', step: 50 });

    let h = await history(store, 'cut');
    const view = await stateAt(h, h.lastSeq);
    expect(view).toMatchObject({ state: 'stopped', stopReason: 'interrupted' });
    expect(view.context.exported).toEqual({ checkpoint: 1, kind: 'interrupt', out });
    expect((await checkpointsOf(h)).map((c) => [c.name, c.kind, c.step, c.metrics === null])).toEqual([
      ['ckpt:0', 'initial', 0, false],
      ['ckpt:1', 'epoch', 37, false],
      ['int:1', 'interrupt', 50, true],
    ]);

    const resumed = await resume('cut', { store });
    expect(resumed).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 150, weightsHash: straight.weightsHash, bestCheckpoint: straight.bestCheckpoint });
    h = await history(store, 'cut');
    expect((await checkpointsOf(h)).map((c) => c.name)).toEqual(['ckpt:0', 'ckpt:1', 'int:1', 'ckpt:2', 'ckpt:3', 'ckpt:4']);
    expect(epochCheckpoints(h)).toEqual(epochCheckpoints(await history(store, 'straight')));
    // `last` is now the last epoch checkpoint, and int:1 is a point like any other.
    expect((await h.resolvePoint('last')).checkpoint.data).toMatchObject({ kind: 'epoch', index: 4 });
    expect((await h.resolvePoint('int:1')).step).toBe(50);
    await expect(h.resolvePoint('int:2')).rejects.toThrow(new PointError('run cut has no interrupt checkpoint 2 (it has int:1)'));
    expect((await replay('cut', { store, verify: true })).identical).toBe(true);
  });
});

describe('export of a crashed run', () => {
  it('exports a SIGKILLed run\'s checkpoint without ending it; resume then finishes it exactly', async () => {
    const args = ['--dataset', 'iris', '--model', 'mlp', '--backend', 'wasm', '--batch-size', '8', '--stop-point', '10', '--checkpoints', '4', '--lr', '0.01', '--seed', '7'];
    const killed = await runCli(['train', ...args, '--run-id', 'crashed', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 60 } });
    expect(killed.signal).toBe('SIGKILL');
    const out = path.join(await tempDir(), 'model');
    expect(await exportRun('crashed', { store, checkpoint: 'last', out })).toMatchObject({ checkpointName: 'ckpt:1', step: 37 });
    const h = await history(store, 'crashed');
    const view = await stateAt(h, h.lastSeq);
    expect(view.state).toBe('training');
    expect(view.context.exported).toMatchObject({ checkpoint: 1, kind: 'epoch', out });
    expect(await resume('crashed', { store })).toMatchObject({ stopReason: 'budget', step: 150, weightsHash: straight.weightsHash });
    expect((await replay('crashed', { store, verify: true })).identical).toBe(true);
    expect((await fsck(store, { runId: 'crashed' })).problems).toEqual([]);
  });
});

describe('resume --stop-point: training longer in place', () => {
  it('extends an interrupted run: it resumes to the new budget', async () => {
    await train({ store, config: { ...IRIS, runId: 'cut2', stopPoint: 5, checkpoints: 2 }, ...stopAt(20) });
    expect(await resume('cut2', { store, stopPoint: 10, checkpoints: 4 })).toMatchObject({ stopReason: 'budget', step: 150, weightsHash: straight.weightsHash });
    // Spread from its last epoch checkpoint (here the start): the checkpoints of a run made that long.
    expect(epochCheckpoints(await history(store, 'cut2'))).toEqual(epochCheckpoints(await history(store, 'straight')));
  });

  it('extends a run stopped on budget: same step numbers, and the same weights as training that long at once', async () => {
    const short = await train({ store, config: { ...IRIS, runId: 'short', stopPoint: 5, checkpoints: 2 } });
    expect(short).toMatchObject({ stopReason: 'budget', step: 75 });
    // Nothing to resume without a longer budget: says so, trains nothing.
    const warnings: string[] = [];
    expect(await resume('short', { store, onWarning: (m) => warnings.push(m) })).toMatchObject({ step: 75 });
    expect(warnings).toEqual(['run short finished (budget) at step 75; nothing to resume. To train longer: retrace resume short --stop-point N']);

    const longer = await resume('short', { store, stopPoint: 10 });
    expect(longer).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 150, weightsHash: straight.weightsHash });
    const h = await history(store, 'short');
    expect(h.records.filter((r) => r.type === 'run.extended').map((r) => r.data)).toEqual([{ stopPoint: 10, checkpoints: 4, totalSteps: 150 }]);
    expect((await checkpointsOf(h)).map((c) => [c.name, c.step])).toEqual([['ckpt:0', 0], ['ckpt:1', 37], ['ckpt:2', 75], ['ckpt:3', 112], ['ckpt:4', 150]]);
    expect((await stateAt(h, h.lastSeq)).schedule).toMatchObject({ stopPoint: 10, checkpoints: 4, totalSteps: 150 });
    expect((await replay('short', { store, verify: true })).identical).toBe(true);
    expect((await fsck(store, { runId: 'short' })).problems).toEqual([]);

    // A stop point the run has already reached is refused, and changes nothing.
    await expect(resume('short', { store, stopPoint: 10 })).rejects.toThrow(
      new ConfigError('--stop-point 10 gives 150 steps, but run short has done 150 steps of its schedule; pass a stop point of at least 10.0667'),
    );
    await expect(resume('short', { store, stopPoint: 20, checkpoints: 3 })).rejects.toThrow(/--checkpoints 3 must be more than the 4 checkpoints run short has made/);
    await expect(resume('short', { store, checkpoints: 8 })).rejects.toThrow(new ConfigError('run short has no budget left (step 150 of 150); pass --stop-point to train longer'));
    expect((await history(store, 'short')).lastSeq).toBe(h.lastSeq);
  });

  it('extends an early-stopped run: early stopping\'s wait starts again, every other counter is kept', async () => {
    // minDelta 10: no evaluation ever improves, so patience 1 stops at the first epoch checkpoint.
    const config: ConfigInput = { ...IRIS, runId: 'early', earlyStopping: true, earlyStopPatience: 1, minDelta: 10, reduceLrOnPlateau: true, plateauPatience: 5 };
    expect(await train({ store, config })).toMatchObject({ stopReason: 'early-stop', step: 37 });
    const again = await resume('early', { store, stopPoint: 10 });
    expect(again).toMatchObject({ stopReason: 'early-stop', step: 75 });
    const h = await history(store, 'early');
    const extended = h.records.find((r) => r.type === 'run.extended')!;
    const before = h.snapshotAt(extended.seq - 1).snapshot.context;
    const after = h.snapshotAt(extended.seq).snapshot.context;
    expect([before.sinceImprovement, before.plateauWait]).toEqual([1, 1]);
    expect([after.sinceImprovement, after.plateauWait, after.currentBaseLr, after.bestMetric]).toEqual([0, 1, before.currentBaseLr, before.bestMetric]);
    expect((await replay('early', { store, verify: true })).identical).toBe(true);
  });
});

describe('logs of retrace 0.1.0 (rules 1)', () => {
  let old: string;
  beforeAll(async () => {
    old = path.join(await tempDir(), 'store');
    await cp(path.join(ROOT, 'test', 'fixtures', 'rules1-store', 'store'), old, { recursive: true });
  });

  it('cannot be extended in place (branching can), and an exported interrupted one says why it does not resume', async () => {
    await expect(resume('pl', { store: old, stopPoint: 40 })).rejects.toThrow(
      new ResumeRefusedError('run pl was made by retrace 0.1.0 (rules 1), whose budget cannot be extended; branch from it instead: retrace branch pl@last --stop-point N'),
    );
    const warnings: string[] = [];
    expect(await resume('exp', { store: old, onWarning: (m) => warnings.push(m) })).toMatchObject({ state: 'exported', stopReason: 'interrupted' });
    expect(warnings[0]).toMatch(/^run exp was exported while interrupted, and retrace 0.1.0 \(which made it\) ended a run at export; nothing to resume: go on with retrace branch exp@last$/);
  });

  it('a branch with no overrides after plateau reductions continues at the reduced rate and reproduces the parent', async () => {
    const summary = await branch('pl@ckpt:3', { store: old, overrides: { runId: 'plb2' } });
    const parent = await history(old, 'pl');
    const child = await history(old, 'plb2');
    expect(child.created.inheritance).toEqual({
      overridden: [],
      schedule: 'continued',
      controller: ['currentBaseLr', 'sinceImprovement', 'plateauWait', 'bestMetric', 'cooldownLeft', 'warmupPosition'],
    });
    const p = stepsByAbsolute(parent);
    const c = stepsByAbsolute(child);
    expect(c.size).toBe(120 - 45);
    for (const [step, facts] of c) expect(facts, `step ${step}`).toEqual(p.get(step));
    expect(new Set([...p.values()].map((f) => f.lr)).size).toBeGreaterThan(1); // the parent's rate did drop
    expect(epochCheckpoints(child)).toEqual(epochCheckpoints(parent).filter(([step]) => step > 45));
    expect(summary).toMatchObject({ stopReason: 'plateau', step: 75 });
  });
});

describe('branch inheritance', () => {
  it('an override changes only what it names: lr a fresh rate, a budget key a fresh schedule', async () => {
    await branch('straight@ckpt:1', { store, overrides: { runId: 'lr', lr: 0.002, checkpoints: 2, stopPoint: 2 } });
    const h = await history(store, 'lr');
    expect(h.created.settings.inherited?.currentBaseLr).toBe(0.002);
    expect(h.created.settings.plan).toBeUndefined();
    expect(h.created.inheritance).toMatchObject({ overridden: ['lr', 'checkpoints', 'stopPoint'], schedule: 'fresh' });
    expect(h.snapshotAt().snapshot.context.step).toBe(30);
    // No budget left at the parent's end: the branch must be given one.
    await expect(branch('straight@last', { store, overrides: { runId: 'none' } })).rejects.toThrow(/is at the end of its budget \(step 150\): give the branch a budget of its own/);
  });
});

describe('the command line', () => {
  it('lists checkpoints (retrace checkpoints RUN) and trains longer with resume --stop-point', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'retrace.js'), ...args, '--store', store], { encoding: 'utf8', timeout: 120_000 });
    const list = run(['checkpoints', 'cut', '--json']);
    expect(list.status, list.stderr).toBe(0);
    const rows = JSON.parse(list.stdout) as Array<{ name: string; kind: string; metrics: unknown }>;
    expect(rows.map((r) => r.name)).toEqual(['ckpt:0', 'ckpt:1', 'int:1', 'ckpt:2', 'ckpt:3', 'ckpt:4']);
    expect(rows[2]).toMatchObject({ kind: 'interrupt', metrics: null });
    expect(run(['checkpoints', 'cut']).stdout).toMatch(/^int:1\s+interrupt\s+50\s+not evaluated/m);

    const bad = run(['resume', 'straight', '--stop-point', 'lots']);
    expect(bad.status).toBe(2);
    const longer = run(['resume', 'straight', '--stop-point', '12', '--checkpoints', '5', '--json']);
    expect(longer.status, longer.stderr).toBe(0);
    expect(JSON.parse(longer.stdout)).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 180 });
    // The resolved schedule is printed when a run starts or goes on (stderr with --json).
    expect(longer.stderr).toContain('resume straight: schedule: 120 training examples × stopPoint 12 = 1440 examples → 180 steps of 8 (1440 examples); 5 checkpoints, every 30 steps'); // one new checkpoint, 150 → 180
    const fresh = run(['train', '--dataset', 'iris', '--backend', 'wasm', '--stop-point', '14.3', '--checkpoints', '10', '--batch-size', '16', '--run-id', 'printed']);
    expect(fresh.status, fresh.stderr).toBe(0);
    expect(fresh.stdout).toContain(
      'train: schedule: 120 training examples × stopPoint 14.3 = 1716 examples → 107 steps of 16 (1712 examples); 10 checkpoints, every 10–11 steps (171.6 examples per virtual epoch)',
    );
  });
});
