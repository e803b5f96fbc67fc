// Issue #9, item 4: stopPoint is passes over trainingExamples in the whole run, whatever the batch
// size and checkpoint count: the step budget is the one closest to trainingExamples × stopPoint /
// batchSize (never more than one batch off), checkpoints spread over it as evenly as integers allow.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPlanBoundary, initialPlan } from '../../machines/training.machine.js';
import { computeSchedule, ConfigError, resolveConfig } from '../../src/config.js';
import { settingsFrom } from '../../src/run/environment.js';
import { train } from '../../src/run/train.js';
import { Store } from '../../src/log/store.js';
import { readRun, stateAt } from '../../src/run/inspect.js';
import { tempDir } from './helpers.js';

describe('the virtual-epoch schedule', () => {
  it('sees trainingExamples × stopPoint examples within one batch, with checkpoints evenly spread', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0.01, max: 50, noNaN: true }),
        fc.integer({ min: 1, max: 4096 }),
        fc.integer({ min: 1, max: 200 }),
        (trainingExamples, stopPoint, batchSize, checkpoints) => {
          const config = resolveConfig({ dataset: 'iris', trainingExamples, stopPoint, batchSize, checkpoints });
          const target = trainingExamples * stopPoint;
          let schedule;
          try {
            schedule = computeSchedule(config, 1);
          } catch (err) {
            // Refused only when there are more checkpoints than steps.
            expect(err).toBeInstanceOf(ConfigError);
            expect(checkpoints).toBeGreaterThan(Math.max(1, Math.round(target / batchSize)));
            return;
          }
          expect(Math.abs(schedule.totalSteps * batchSize - target)).toBeLessThanOrEqual(batchSize);
          // The closest step count: half a batch off at most (unless the run is a single step).
          if (schedule.totalSteps > 1) expect(Math.abs(schedule.totalSteps * batchSize - target)).toBeLessThanOrEqual((batchSize / 2) * (1 + 1e-9));
          const settings = settingsFrom(config, schedule);
          const plan = initialPlan(settings);
          const at: number[] = [];
          for (let s = 1; s <= schedule.totalSteps; s += 1) if (isPlanBoundary(plan, s)) at.push(s);
          expect(at).toHaveLength(checkpoints);
          expect(at.at(-1)).toBe(schedule.totalSteps);
          const gaps = at.map((s, i) => s - (at[i - 1] ?? 0));
          expect(Math.max(...gaps) - Math.min(...gaps)).toBeLessThanOrEqual(1);
          expect(schedule.stepsPerEpoch).toBe(Math.max(...gaps));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("gives the issue's iris numbers: 14.3 passes of 120 examples are 1,712 examples at batch 16 and 1,728 at batch 32", () => {
    const at = (batchSize: number) => computeSchedule(resolveConfig({ dataset: 'iris', stopPoint: 14.3, checkpoints: 10, batchSize }), 120);
    expect(at(16)).toMatchObject({ totalSteps: 107, trainingExamples: 120, examplesPerEpoch: 171.6, stepsPerEpoch: 11 });
    expect(at(32).totalSteps * 32).toBe(1728);
    // 1 pass at batch 64 is 2 steps (128 examples, not 1,280): 20 checkpoints do not fit, and say so.
    expect(() => computeSchedule(resolveConfig({ dataset: 'iris', stopPoint: 1, checkpoints: 20, batchSize: 64 }), 120)).toThrow(
      /config field "checkpoints": 20 checkpoints do not fit in this run's 2 step\(s\) \(120 training examples × stopPoint 1 \/ batchSize 64\); use at most 2 checkpoints/,
    );
  });

  it('trains exactly the budget, checkpointing on the spread steps; refuses crowded checkpoints before creating the run', async () => {
    const store = await tempDir();
    const summary = await train({ store, config: { dataset: 'iris', backend: 'wasm', runId: 's', stopPoint: 14.3, checkpoints: 10, batchSize: 16 } });
    expect(summary).toMatchObject({ state: 'stopped', stopReason: 'budget', step: 107, examplesSeen: 1712 });
    const s = await Store.open(store);
    try {
      const history = await readRun(s, 's');
      expect(history.checkpoints.map((c) => c.data.step)).toEqual([0, 10, 21, 32, 42, 53, 64, 74, 85, 96, 107]);
      expect((await stateAt(history, history.lastSeq)).schedule).toMatchObject({ trainingExamples: 120, examplesPerEpoch: 171.6, totalSteps: 107, checkpoints: 10, stepsPerCheckpoint: { min: 10, max: 11 } });
    } finally {
      await s.close();
    }
    await expect(train({ store, config: { dataset: 'iris', backend: 'wasm', runId: 'crowded', stopPoint: 1, checkpoints: 20, batchSize: 64 } })).rejects.toThrow(ConfigError);
    const after = await Store.open(store);
    try {
      expect(await after.listRuns()).toEqual(['s']);
    } finally {
      await after.close();
    }
  });
});
