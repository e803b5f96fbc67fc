// The one mapping from the log's metric fields to TensorBoard tags. Tags use Keras's History names
// (`loss`, `val_loss`, `val_acc`, `lr`), so a retrace run sits beside a Keras run in one TensorBoard
// with the same tags. A new metric in the log gets its tag here and nowhere else.
import type { LogRecord } from '../log/events.js';

/** One scalar of one event: a tag and its value (written as float32, TensorBoard's `simple_value`). */
export interface ScalarPoint {
  tag: string;
  value: number;
}

/** Log field → TensorBoard tag, per record type. */
export const METRIC_TAGS = {
  'step.finished': { loss: 'loss', lr: 'lr', examplesSeen: 'examples_seen' },
  'eval.finished': { valLoss: 'val_loss', valAccuracy: 'val_acc' },
} as const;

/**
 * The scalars a record carries, at the record's own step (relative to the run; the caller adds the
 * run's origin), or null for records that carry none. A non-finite loss (a diverged step) is kept
 * as NaN/±Infinity, which TensorBoard draws as such.
 */
export function scalarsOf(record: LogRecord): { step: number; scalars: ScalarPoint[] } | null {
  switch (record.type) {
    case 'step.finished': {
      const t = METRIC_TAGS['step.finished'];
      const d = record.data;
      return {
        step: d.step,
        scalars: [
          { tag: t.loss, value: d.loss },
          { tag: t.lr, value: d.lr },
          { tag: t.examplesSeen, value: d.examplesSeen },
        ],
      };
    }
    case 'eval.finished': {
      const t = METRIC_TAGS['eval.finished'];
      const d = record.data;
      return {
        step: d.step,
        scalars: [
          { tag: t.valLoss, value: d.valLoss },
          { tag: t.valAccuracy, value: d.valAccuracy },
        ],
      };
    }
    default:
      return null;
  }
}
