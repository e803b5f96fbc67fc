// machines/fold.ts steps the machine with XState's internal `machine.transition(snapshot, event,
// scope)` and one inert scope (ten times faster than the public API, which builds an actor per
// call). This property pins that shortcut to XState's public, pure `transition(machine,
// snapshot, event)`: for random settings (rules 1 and 2) and random valid event sequences — the
// events a driver sends, with random losses, divergences, stop requests, exports, resumes and
// extensions — both give exactly the same snapshots (state value and context) at every event.
// Pinned against xstate 5.33.3 (package.json): re-run on every xstate upgrade.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import { startMachine, stateName, step, type TrainingSnapshot } from '../../machines/fold.js';
import type { TrainingEvent, TrainingSettings } from '../../machines/training.events.js';
import { scheduleStep, trainingMachine } from '../../machines/training.machine.js';

const settingsArb: fc.Arbitrary<TrainingSettings> = fc
  .record({
    rules: fc.constantFrom(1, 2),
    stepsPerEpoch: fc.integer({ min: 1, max: 4 }),
    checkpoints: fc.integer({ min: 1, max: 5 }),
    warmupSteps: fc.integer({ min: 0, max: 6 }),
    plateauPatience: fc.integer({ min: 1, max: 3 }),
    cooldown: fc.integer({ min: 0, max: 2 }),
    earlyStopping: fc.boolean(),
    earlyStopPatience: fc.integer({ min: 1, max: 3 }),
    reduceLrOnPlateau: fc.boolean(),
    monitor: fc.constantFrom('valLoss' as const, 'valAccuracy' as const),
    divergenceThreshold: fc.option(fc.constantFrom(2, 5), { nil: null }),
    minDelta: fc.constantFrom(0, 0.01),
  })
  .map(({ rules, checkpoints, reduceLrOnPlateau, ...s }) => ({
    ...s,
    totalSteps: s.stepsPerEpoch * checkpoints,
    batchSize: 2,
    baseLr: 0.1,
    minLr: 0.02,
    lrFactor: 0.5,
    // Rules 1 settings have no rules-2 keys at all (as in logs made by retrace 0.1.0).
    ...(rules === 2 ? { rules: 2, checkpoints, reduceLrOnPlateau } : {}),
  }));

/** One draw per event: which outside input (if any) comes, and the numbers measured. */
const drawArb = fc.record({
  outside: fc.integer({ min: 0, max: 19 }),
  loss: fc.oneof({ weight: 12, arbitrary: fc.double({ min: 0, max: 3, noNaN: true }) }, { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY) }),
  valLoss: fc.oneof({ weight: 12, arbitrary: fc.double({ min: 0, max: 3, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(Number.NaN) }),
  valAccuracy: fc.double({ min: 0, max: 1, noNaN: true }),
  weightsFinite: fc.boolean(),
  extendBy: fc.integer({ min: 1, max: 6 }),
});
type Draw = typeof drawArb extends fc.Arbitrary<infer T> ? T : never;

/** The event a driver would send next in this state (or an outside input the machine accepts). */
function nextEvent(s: TrainingSnapshot, d: Draw): TrainingEvent | null {
  const c = s.context;
  const state = stateName(s);
  if (d.outside === 0) {
    const e: TrainingEvent = { type: 'export.finished', data: { checkpoint: c.lastCheckpoint?.index ?? 0, out: `/x/${c.step}`, ...(c.interrupts !== undefined ? { kind: c.lastCheckpoint?.kind ?? 'initial' } : {}) } };
    if (s.can(e)) return e;
  }
  switch (state) {
    case 'idle':
      return c.lastEval === null
        ? { type: 'eval.finished', data: { step: 0, valLoss: d.valLoss, valAccuracy: d.valAccuracy } }
        : { type: 'checkpoint.committed', data: { kind: 'initial', index: 0, step: 0, weightsHash: 'h0' } };
    case 'warmup':
    case 'training':
    case 'plateau':
      if (d.outside === 1) return { type: 'stop.requested', data: { source: 'api' } };
      return { type: 'step.finished', data: { step: c.step + 1, loss: d.loss, lr: c.lr, examplesSeen: (c.step + 1) * 2, ...(d.outside === 2 ? { weightsFinite: d.weightsFinite } : {}) } };
    case 'checkpointing':
      if (c.interruptedFrom !== null) {
        return { type: 'checkpoint.committed', data: { kind: 'interrupt', index: c.interrupts !== undefined ? c.interrupts + 1 : c.epochCheckpoints, step: c.step, weightsHash: `i${c.step}` } };
      }
      if (c.lastEval?.step !== c.step) return { type: 'eval.finished', data: { step: c.step, valLoss: d.valLoss, valAccuracy: d.valAccuracy } };
      return { type: 'checkpoint.committed', data: { kind: 'epoch', index: c.epochCheckpoints + 1, step: c.step, weightsHash: `h${c.step}` } };
    case 'stopped': {
      const resumed: TrainingEvent = { type: 'run.resumed', data: {} };
      if (d.outside % 2 === 0 && s.can(resumed)) return resumed;
      const at = scheduleStep(c.settings, c.step);
      const done = (c.settings.scheduleOffset?.checkpoints ?? 0) + c.epochCheckpoints;
      const extended: TrainingEvent = { type: 'run.extended', data: { stopPoint: 1, checkpoints: done + 1 + (d.extendBy % 2), totalSteps: at + d.extendBy + 1 } };
      if (s.can(extended)) return extended;
      return s.can(resumed) ? resumed : null;
    }
    case 'exported':
      return null;
  }
}

describe('fold.step against xstate\'s public transition()', () => {
  it('gives the same snapshots for random settings and random valid event sequences', () => {
    fc.assert(
      fc.property(settingsArb, fc.array(drawArb, { minLength: 1, maxLength: 120 }), (settings, draws) => {
        let ours = startMachine(settings);
        let theirs = initialTransition(trainingMachine, settings)[0];
        expect(ours.value).toEqual(theirs.value);
        expect(ours.context).toEqual(theirs.context);
        for (const d of draws) {
          const event = nextEvent(ours, d);
          if (event === null) break;
          const r = step(ours, event);
          expect(r.accepted, `${event.type} in ${stateName(ours)}`).toBe(true);
          theirs = transition(trainingMachine, theirs, event)[0];
          ours = r.snapshot;
          expect(ours.value).toEqual(theirs.value);
          expect(ours.status).toBe(theirs.status);
          expect(ours.context).toEqual(theirs.context);
        }
      }),
      { numRuns: 300 },
    );
  });
});
