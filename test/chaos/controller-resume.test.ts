// Issue #3, part 5: the controller's state survives interruption. A config whose run warms up,
// hits plateaus (learning-rate drops with a cooldown) and stops early is trained once straight
// (the CLI), and once interrupted at several exact points — in warmup, in the plateau state right
// after a drop, right after a checkpoint during the cooldown, mid-epoch, on the way to the early
// stop (an AbortSignal, as Ctrl-C does) — and SIGKILLed twice (inside a checkpoint commit and after
// a step, through the CLI), resumed each time. At every checkpoint the best metric and checkpoint,
// the patience and cooldown counters and the learning-rate schedule must equal the straight run's.
// Needs the built CLI (`npm run build`) for the SIGKILL and `state` parts.
import { afterAll, describe, expect, it } from 'vitest';
import { killAllChildren, runCli } from '../../src/chaos/harness.js';
import type { LogRecord } from '../../src/log/events.js';
import { Store } from '../../src/log/store.js';
import type { RunSummary } from '../../src/run/common.js';
import { readRun, resolveAt, stateAt } from '../../src/run/inspect.js';
import { resume } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { cleanupTempDirs, cli, json, ROOT, tempDir } from './helpers.js';

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

const CONFIG = {
  dataset: 'iris',
  model: 'mlp',
  batchSize: 8,
  stopPoint: 40,
  checkpoints: 20,
  lr: 0.02,
  warmupSteps: 10,
  reduceLrOnPlateau: true,
  plateauPatience: 1,
  cooldown: 1,
  lrFactor: 0.5,
  minDelta: 0.02,
  earlyStopping: true,
  earlyStopPatience: 4,
  minLr: 0.001,
  seed: 42,
} as const;

const FLAGS = Object.entries(CONFIG).flatMap(([k, v]) => {
  const flag = `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return v === true ? [flag] : [flag, String(v)];
});

/** The controller's part of the machine context (lastCheckpoint and interrupts count the interrupt checkpoints, which only the interrupted run has). */
function controller(context: Record<string, unknown>): Record<string, unknown> {
  const { lastCheckpoint: _last, exported: _exported, interrupts: _interrupts, ...rest } = context;
  void _last;
  void _exported;
  void _interrupts;
  return rest;
}

type Condition = (r: LogRecord) => boolean;

/** Runs train or resume in this process and stops it (as Ctrl-C does) when `stopWhen` first holds. */
async function interrupted(run: (signal: AbortSignal, onRecord: (r: LogRecord) => void) => Promise<RunSummary>, stopWhen: Condition): Promise<RunSummary> {
  const controller = new AbortController();
  return run(controller.signal, (r) => {
    if (!controller.signal.aborted && stopWhen(r)) controller.abort();
  });
}

describe('controller state across interruptions', () => {
  it('best metric, patience, cooldown, lr schedule and best checkpoint equal the straight run at every checkpoint', async () => {
    const store = await tempDir();
    // The straight run, through the CLI.
    const ref = await cli(['train', ...FLAGS, '--run-id', 'ref', '--store', store, '--json']);
    expect(ref.code, ref.stderr).toBe(0);
    const refSummary = json<RunSummary>(ref);
    expect(refSummary.stopReason).toBe('early-stop');

    const refHistory = await withStore(store, (s) => readRun(s, 'ref'));
    const transitions = refHistory.records.filter((r) => r.type === 'state.changed').map((r) => (r.data as { to: string }).to);
    // The config really exercises the controller: warmup, LR drops, an early stop.
    expect(transitions).toContain('warmup');
    expect(transitions.filter((t) => t === 'plateau').length).toBeGreaterThanOrEqual(2);
    const plateauSteps = refHistory.records
      .filter((r) => r.type === 'state.changed' && (r.data as { to: string }).to === 'plateau')
      .map((r) => refHistory.snapshotAt(r.seq).snapshot.context.step);

    // The interrupted run: in-process for exact interruption points, CLI for the SIGKILLs.
    const opts = { store, cwd: ROOT };
    const stepIs = (n: number): Condition => (r) => r.type === 'step.finished' && r.data.step === n;
    const stopped: string[] = [];
    const note = (s: RunSummary) => stopped.push(`${s.state}/${s.stopReason} at step ${s.step}`);
    // 1. In warmup.
    note(await interrupted((signal, onRecord) => train({ ...opts, config: { ...CONFIG, runId: 'x' }, signal, onRecord }), stepIs(5)));
    // 2. In the plateau state, right after the first learning-rate drop.
    note(await interrupted((signal, onRecord) => resume('x', { ...opts, signal, onRecord }), (r) => r.type === 'state.changed' && r.data.to === 'plateau'));
    // 3. Right after the next checkpoint (the one the cooldown covers).
    note(
      await interrupted(
        (signal, onRecord) => resume('x', { ...opts, signal, onRecord }),
        (r) => r.type === 'checkpoint.committed' && r.data.kind === 'epoch' && r.data.step > plateauSteps[0]!,
      ),
    );
    // 4. SIGKILL between a checkpoint's synced event and committed.json, through the CLI.
    const k1 = await runCli(['resume', 'x', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'sync-batch-after', n: 1 } });
    expect(k1.signal).toBe('SIGKILL');
    // 5. Mid-epoch.
    const mid = plateauSteps[1]! - 13;
    note(await interrupted((signal, onRecord) => resume('x', { ...opts, signal, onRecord }), stepIs(mid)));
    // 6. SIGKILL after a few steps.
    const k2 = await runCli(['resume', 'x', '--store', store, '--json'], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 17 } });
    expect(k2.signal).toBe('SIGKILL');
    // 7. In the plateau state of the last drop, on the way to the early stop.
    const last = plateauSteps.at(-1)!;
    expect(last).toBeGreaterThan(mid + 17);
    let lastStep = 0;
    note(
      await interrupted(
        (signal, onRecord) => resume('x', { ...opts, signal, onRecord }),
        (r) => {
          if (r.type === 'step.finished') lastStep = r.data.step;
          return r.type === 'state.changed' && r.data.to === 'plateau' && lastStep === last;
        },
      ),
    );
    const final = await resume('x', opts);
    expect(stopped.every((s) => s.startsWith('stopped/interrupted')), stopped.join('; ')).toBe(true);
    expect(stopped).toHaveLength(5);

    // The end is the straight run's end.
    expect(final).toMatchObject({ state: 'stopped', stopReason: 'early-stop', step: refSummary.step, bestCheckpoint: refSummary.bestCheckpoint, weightsHash: refSummary.weightsHash });

    const x = await withStore(store, (s) => readRun(s, 'x'));
    expect(x.records.filter((r) => r.type === 'stop.requested')).toHaveLength(5);
    const interruptedFrom = x.records
      .filter((r): r is Extract<LogRecord, { type: 'checkpoint.committed' }> => r.type === 'checkpoint.committed' && r.data.kind === 'interrupt')
      .map((r) => r.data.machine.context.interruptedFrom);
    expect(interruptedFrom).toEqual(expect.arrayContaining(['warmup', 'plateau', 'training']));

    // At every epoch checkpoint: the stored machine snapshots' controller state is the same.
    const epochs = (h: typeof x) =>
      h.records
        .filter((r): r is Extract<LogRecord, { type: 'checkpoint.committed' }> => r.type === 'checkpoint.committed' && r.data.kind !== 'interrupt')
        .map((r) => ({ index: r.data.index, step: r.data.step, weightsHash: r.data.weightsHash, controller: controller(r.data.machine.context) }));
    expect(epochs(x)).toEqual(epochs(refHistory));
    // And the state folded at the step of every checkpoint and the step after it.
    for (const c of epochs(refHistory)) {
      for (const step of [c.step, c.step + 1]) {
        if (step === 0 || step > refSummary.step) continue;
        const want = controller((await stateAt(refHistory, (await resolveAt(refHistory, `step:${step}`)))).context as unknown as Record<string, unknown>);
        const got = controller((await stateAt(x, (await resolveAt(x, `step:${step}`)))).context as unknown as Record<string, unknown>);
        expect(got, `step ${step}`).toEqual(want);
      }
    }
    // The learning-rate schedule, step by step, and the losses.
    const steps = (h: typeof x) => h.records.filter((r) => r.type === 'step.finished').map((r) => r.data);
    expect(steps(x)).toEqual(steps(refHistory));
    // The best checkpoint and metric.
    expect(x.snapshotAt().snapshot.context.best).toEqual(refHistory.snapshotAt().snapshot.context.best);

    // The CLI says the same (`retrace state RUN --at step:N --json` gives the context).
    for (const step of [plateauSteps[0]!, plateauSteps[0]! + 1, last + 1]) {
      const [a, b] = await Promise.all([
        cli(['state', 'ref', '--at', `step:${step}`, '--store', store, '--json']),
        cli(['state', 'x', '--at', `step:${step}`, '--store', store, '--json']),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const ca = json<{ context: Record<string, unknown>; lr: number }>(a);
      const cb = json<{ context: Record<string, unknown>; lr: number }>(b);
      expect(controller(cb.context), `state --at step:${step}`).toEqual(controller(ca.context));
      expect(cb.lr).toBe(ca.lr);
    }
  }, 240_000);
});

async function withStore<T>(dir: string, fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await Store.open(dir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
