// 6. Resume and replay: how long `resume` takes to its first new step against starting the same
// model from scratch, and `replay --verify` throughput against training throughput.
import { initBackend } from '../src/train/backend.js';
import { loadDataset } from '../src/train/data/index.js';
import { createSession } from '../src/train/session.js';
import { resolveConfig } from '../src/config.js';
import { Store } from '../src/log/store.js';
import { train } from '../src/run/train.js';
import { resume } from '../src/run/resume.js';
import { replay } from '../src/run/replay.js';
import type { LogRecord } from '../src/log/events.js';
import { fmt, gc, main, median, removeDir, scratchDir, type Table, type Target } from './lib/common.js';
import { writeBarChart } from './lib/svg.js';

const REPS = Number(process.env.BENCH_REPS ?? 3);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);

main('resume-replay', async () => {
  const { tf, info } = await initBackend('wasm');
  const mnist = await loadDataset('mnist', { label: 'label', valFraction: 0.2, seed: 42 });
  const dir = scratchDir('resume');
  const store = await Store.open(dir);
  const base = { dataset: 'mnist', model: 'mlp' as const, backend: 'wasm' as const, batchSize: 64, stopPoint: 1 };
  const resumeMs: number[] = [];
  const scratchMs: number[] = [];
  const bareMs: number[] = [];
  const trainRate: number[] = [];
  const replayRate: number[] = [];
  const ratios: number[] = [];
  const separateRatios: number[] = [];
  const replayTotal: number[] = [];
  const trainTotal: number[] = [];
  const STEPS = Math.round(200 * SCALE);
  const WARM = 10;
  try {
    for (let rep = 0; rep < REPS; rep++) {
      // --- resume: interrupt a run mid-epoch, then time resume() to its first new step.
      const runId = `interrupted-${rep}`;
      const controller = new AbortController();
      await train({
        store,
        dataset: mnist,
        signal: controller.signal,
        config: { ...base, runId, checkpoints: 2, trainingExamples: 100 * 64 * 2 },
        onRecord: (r) => {
          if (r.type === 'step.finished' && r.data.step === 130) controller.abort();
        },
      });
      gc();
      let t0 = performance.now();
      let first = 0;
      const resumeController = new AbortController();
      await resume(runId, {
        store,
        dataset: mnist,
        signal: resumeController.signal,
        onRecord: (r) => {
          if (r.type === 'step.finished' && first === 0) {
            first = performance.now();
            resumeController.abort();
          }
        },
      });
      resumeMs.push(first - t0);

      // --- from scratch: a new run of the same config to its first step (retrace: build, evaluate and commit checkpoint 0 first).
      gc();
      t0 = performance.now();
      first = 0;
      const scratchController = new AbortController();
      await train({
        store,
        dataset: mnist,
        signal: scratchController.signal,
        config: { ...base, runId: `scratch-${rep}`, checkpoints: 2, trainingExamples: 100 * 64 * 2 },
        onRecord: (r) => {
          if (r.type === 'step.finished' && first === 0) {
            first = performance.now();
            scratchController.abort();
          }
        },
      });
      scratchMs.push(first - t0);

      // --- bare: build the model and optimizer and take one step, no log.
      gc();
      t0 = performance.now();
      const session = await createSession({ tf, backend: info, dataset: mnist, config: resolveConfig({ ...base, batchSize: 64 }) });
      session.step(0, 0, 0.001);
      bareMs.push(performance.now() - t0);
      session.dispose();

      // --- replay --verify vs training throughput: train a run, then replay it; steady state of both.
      const times = (records: Array<{ r: LogRecord; t: number }>) => {
        const steps = records.filter((x) => x.r.type === 'step.finished');
        return ((steps.length - 1 - WARM) * 1000) / (steps[steps.length - 1]!.t - steps[WARM]!.t);
      };
      const tr: Array<{ r: LogRecord; t: number }> = [];
      const replayId = `replayed-${rep}`;
      gc();
      let s0 = performance.now();
      await train({ store, dataset: mnist, config: { ...base, runId: replayId, checkpoints: 1, trainingExamples: STEPS * 64 }, onRecord: (r) => tr.push({ r, t: performance.now() }) });
      trainTotal.push(performance.now() - s0);
      const rp: Array<{ r: LogRecord; t: number }> = [];
      gc();
      s0 = performance.now();
      const result = await replay(replayId, { store, dataset: mnist, verify: true, onRecord: (r) => rp.push({ r, t: performance.now() }) });
      replayTotal.push(performance.now() - s0);
      if (!result.identical) throw new Error(`replay of ${replayId} diverged: ${result.message}`);
      trainRate.push(times(tr));
      replayRate.push(times(rp));
      separateRatios.push(replayRate[rep]! / trainRate[rep]!);

      // Side by side: replay the run while a new run of the same config trains, in this process at
      // once. Both drivers yield to the event loop every 50 ms, so they take turns in ~50 ms slices
      // under the same load; the ratio of the steps each does while both are stepping is the cost ratio.
      const a: number[] = [];
      const b: number[] = [];
      gc();
      // The replay starts once the new run steps (its creation, a few dozen awaited writes, would
      // otherwise take a 50 ms turn each while the replay runs, and the two would not overlap).
      let stepping: () => void = () => {};
      const started = new Promise<void>((resolve) => (stepping = resolve));
      const training = train({
        store,
        dataset: mnist,
        // Ten times the replay's steps: it trains all the while the replay (which starts after it
        // and takes a few seconds to start: each of its awaits waits for a 50 ms turn of the
        // training) steps, so the window where both step is the replay's whole run.
        config: { ...base, runId: `side-${rep}`, checkpoints: 1, trainingExamples: 10 * STEPS * 64 },
        onRecord: (r) => {
          if (r.type !== 'step.finished') return;
          b.push(performance.now());
          stepping();
        },
      });
      await Promise.race([started, training]);
      const [again] = await Promise.all([
        replay(replayId, { store, dataset: mnist, verify: true, onRecord: (r) => r.type === 'step.finished' && a.push(performance.now()) }),
        training,
      ]);
      if (!again.identical) throw new Error(`replay of ${replayId} diverged: ${again.message}`);
      const from = Math.max(a[WARM]!, b[WARM]!);
      const to = Math.min(a[a.length - 1]!, b[b.length - 1]!);
      const inWindow = (xs: number[]) => xs.filter((t) => t > from && t <= to).length;
      ratios.push(inWindow(a) / inWindow(b));
      console.log(
        `  rep ${rep + 1}/${REPS}: resume→first step ${fmt(resumeMs[rep]!)} ms, new run→first step ${fmt(scratchMs[rep]!)} ms, bare build+step ${fmt(bareMs[rep]!)} ms; ` +
          `train ${fmt(trainRate[rep]!)} steps/s, replay ${fmt(replayRate[rep]!)} steps/s (separately); side by side ${inWindow(a)} replayed vs ${inWindow(b)} trained steps ` +
          `in ${fmt((to - from) / 1000, 3)} s: ratio ${fmt(ratios[rep]!, 3)}`,
      );
    }
  } finally {
    await store.close();
    removeDir(dir);
  }
  const ratio = median(ratios);
  const targets: Target[] = [{ what: 'replay --verify steps/s ÷ training steps/s (MNIST MLP, wasm)', target: '≥ 0.95', measured: fmt(ratio, 3), met: ratio >= 0.95 }];
  const t1: Table = {
    title: `Time to the first step (MNIST MLP, wasm; median of ${REPS})`,
    headers: ['what', 'ms'],
    rows: [
      ['resume of an interrupted run → its first new step', fmt(median(resumeMs))],
      ['train a new run → its first step (incl. evaluation + checkpoint 0)', fmt(median(scratchMs))],
      ['bare: build model + optimizer, one step (no log)', fmt(median(bareMs))],
    ],
  };
  const t2: Table = {
    title: `replay --verify vs training throughput (${STEPS} steps, steady state; median of ${REPS})`,
    headers: ['measure', 'train', 'replay --verify', 'ratio', 'range'],
    rows: [
      ['side by side in one process (steps done while both step)', '', '', fmt(ratio, 3), `${fmt(Math.min(...ratios), 3)}–${fmt(Math.max(...ratios), 3)}`],
      ['steps/s, separate runs (steady state)', fmt(median(trainRate)), fmt(median(replayRate)), fmt(median(separateRatios), 3), `${fmt(Math.min(...separateRatios), 3)}–${fmt(Math.max(...separateRatios), 3)}`],
      ['whole call, ms (replay includes reading the log)', fmt(median(trainTotal)), fmt(median(replayTotal)), fmt(median(trainTotal) / median(replayTotal), 3), ''],
    ],
  };
  const chart = writeBarChart('resume-replay.svg', {
    title: 'Time to the first step (ms, MNIST MLP on wasm)',
    groups: ['resume (interrupted run)', 'new run (retrace train)', 'bare build + step'],
    series: [{ name: 'ms', values: [median(resumeMs), median(scratchMs), median(bareMs)] }],
    unit: 'milliseconds',
  });
  return {
    name: 'resume-replay',
    title: '6. Resume and replay',
    method:
      'A run is interrupted (AbortSignal) at step 130 of 200, which commits an interrupt checkpoint; `resume()` is then timed from the call to its first new ' +
      '`step.finished` (open the log, read and fold it, build the environment, restore weights and Adam state from the blobs, append the process record). ' +
      'It is set against `train()` of a new run of the same config to its first step, and against building the model and optimizer bare and taking one step. ' +
      `Replay: a ${STEPS}-step run is trained and then replayed with \`--verify\` (every step re-executed and compared with the log), steady-state steps/s of both ` +
      'from `onRecord` (replay reports each verified record). The target\'s measure runs them side by side: the run is replayed while a new run of the same config ' +
      'trains in the same process (each driver yields to the event loop every 50 ms, so they take turns under the same load), and the ratio is the number of steps ' +
      'each completes while both are stepping; median of 3.',
    tables: [t1, t2],
    targets,
    charts: [{ file: chart, alt: 'time to first step' }],
    notes: [
      `Resuming costs ${fmt(median(resumeMs))} ms to the first new step against ${fmt(median(bareMs))} ms to build the same model bare and take a step: it reads and folds ` +
        "the log, rebuilds the model (seeded, as a new run would), then overwrites the weights and Adam's slots from the checkpoint's blobs (read and verified by hash). " +
        `A new retrace run takes ${fmt(median(scratchMs))} ms because it evaluates the starting weights and commits checkpoint 0 before its first step.`,
      'A run that crashed mid-epoch resumes from its last checkpoint and re-executes the steps logged after it, comparing each with the log, at the replay speed below; ' +
        'then it goes on training.',
      `\`replay --verify\` runs at ${fmt(ratio, 3)}× training speed side by side (separate runs: ${fmt(median(separateRatios), 3)}, with the spread the machine's load ` +
        'gives whole runs): it re-executes each step exactly as training did and compares the canonical JSON of the facts instead of encoding and appending them; ' +
        'at checkpoints it hashes the tensors instead of writing blobs. The whole call also reads and validates the log first (see 5. for that cost on long logs).',
    ],
    data: { resumeMs, scratchMs, bareMs, trainRate, replayRate, sideBySideRatios: ratios, separateRatios, trainTotal, replayTotal },
  };
});
