// Pure helpers to run the training machine without an actor: XState's transition() and
// initialTransition() compute the next snapshot without executing anything, so folding a log
// through them rebuilds state exactly, and the live driver uses the very same functions.
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import { trainingMachine, type TrainingContext, type TrainingStateName } from './training.machine.js';
import type { TrainingEvent, TrainingSettings } from './training.events.js';

export type TrainingSnapshot = SnapshotFrom<typeof trainingMachine>;

/** A snapshot as data: what checkpoints store and `state --json` prints. */
export interface PlainSnapshot {
  value: TrainingStateName;
  context: TrainingContext;
}

export function startMachine(settings: TrainingSettings): TrainingSnapshot {
  return initialTransition(trainingMachine, settings)[0];
}

/** Applies one event. `accepted` is false when the machine has no transition for it in this state:
 * a live driver never sends such an event, so in a log it means the log and the machine disagree. */
export function step(snapshot: TrainingSnapshot, event: TrainingEvent): { snapshot: TrainingSnapshot; accepted: boolean } {
  const accepted = snapshot.can(event);
  const [next] = transition(trainingMachine, snapshot, event);
  return { snapshot: next, accepted };
}

export function stateName(snapshot: TrainingSnapshot): TrainingStateName {
  return snapshot.value as TrainingStateName;
}

export function toPlain(snapshot: TrainingSnapshot): PlainSnapshot {
  return { value: stateName(snapshot), context: structuredClone(snapshot.context) };
}

export function fromPlain(plain: PlainSnapshot): TrainingSnapshot {
  return trainingMachine.resolveState({ value: plain.value, context: structuredClone(plain.context) });
}
