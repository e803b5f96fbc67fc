// Training progress for people: a bar on a terminal, plain lines otherwise (logs, CI, pipes).
import cliProgress from 'cli-progress';
import type { LogRecord } from '../log/events.js';
import { formatSchedule, scheduleView } from '../run/schedule.js';
import { initialBudget } from '../../machines/training.machine.js';

export interface Progress {
  onRecord(record: LogRecord): void;
  stop(): void;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(4) : String(x);
}

/**
 * `total` is the step count the bar runs to when the records will not say it: resume and replay
 * start after `run.created` (which carries the budget), so their callers read it from the log
 * first. Unknown (null) shows plain step numbers, never a made-up `N/0`.
 */
export function createProgress(opts: { stream: NodeJS.WriteStream; label: string; total?: number | null }): Progress {
  const tty = Boolean(opts.stream.isTTY);
  let total: number | null = opts.total ?? null;
  let state = 'idle';
  let loss = NaN;
  let val = '';
  let bar: cliProgress.SingleBar | null = null;
  let lastLine = 0;

  const line = (text: string) => {
    if (bar) bar.stop();
    opts.stream.write(`${text}\n`);
    if (bar) bar.start(total ?? 0, lastStep, payload());
  };
  let lastStep = 0;
  const payload = () => ({ state, loss: fmt(loss), val });
  const startBar = (from: number) => {
    if (!tty || bar || total === null) return;
    bar = new cliProgress.SingleBar(
      {
        stream: opts.stream,
        format: `${opts.label} {bar} {value}/{total} steps | {state} | loss {loss} {val}| {eta_formatted} left`,
        hideCursor: true,
        etaBuffer: 200,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, from, payload());
  };
  const ofTotal = () => (total === null ? '' : `/${total}`);

  return {
    onRecord(r) {
      switch (r.type) {
        case 'run.created':
          total = initialBudget(r.data.settings);
          // The resolved schedule, so what a stopPoint means is never a guess.
          opts.stream.write(`${opts.label}: ${formatSchedule(scheduleView(r.data))}\n`);
          if (tty) startBar(0);
          else opts.stream.write(`${opts.label}: ${total} steps, backend ${r.data.backend.name}\n`);
          break;
        case 'step.finished':
          lastStep = r.data.step;
          loss = r.data.loss;
          startBar(lastStep);
          if (bar) bar.update(lastStep, payload());
          else if (Date.now() - lastLine > 5000) {
            lastLine = Date.now();
            opts.stream.write(`  step ${lastStep}${ofTotal()} loss ${fmt(loss)}\n`);
          }
          break;
        case 'eval.finished':
          val = `| val loss ${fmt(r.data.valLoss)} acc ${(r.data.valAccuracy * 100).toFixed(1)}% `;
          break;
        case 'state.changed':
          state = r.data.to;
          if (r.data.to === 'plateau' || r.data.to === 'stopped') line(`  ${r.data.from} → ${r.data.to} at step ${lastStep}`);
          else if (bar) bar.update(lastStep, payload());
          break;
        case 'checkpoint.committed':
          // An interrupt checkpoint evaluates nothing: its line must not repeat the last metrics.
          if (r.data.kind === 'interrupt') line(`  checkpoint int:${r.data.index} (interrupt, not evaluated) at step ${r.data.step}`);
          else if (!bar) opts.stream.write(`  checkpoint ${r.data.index} (${r.data.kind}) at step ${r.data.step} ${val}\n`);
          break;
        case 'run.extended':
          total = r.data.totalSteps;
          line(`  budget extended: stopPoint ${r.data.stopPoint}, ${r.data.checkpoints} checkpoints`);
          break;
        default:
          break;
      }
    },
    stop() {
      if (bar) {
        bar.stop();
        bar = null;
      }
    },
  };
}
