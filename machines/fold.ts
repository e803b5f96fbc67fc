// Pure helpers to run the training machine without an actor: XState's transition() and
// initialTransition() compute the next snapshot without executing anything, so folding a log
// through them rebuilds state exactly, and the live driver uses the very same functions.
import { createActor, initialTransition, type AnyActorScope, type SnapshotFrom } from 'xstate';
import { trainingMachine, type ActiveState, type TrainingContext, type TrainingStateName } from './training.machine.js';
import type { TrainingEvent, TrainingSettings } from './training.events.js';

export type TrainingSnapshot = SnapshotFrom<typeof trainingMachine>;

/** A snapshot as data: what checkpoints store and `state --json` prints (its schema:
 * machines/training.context.ts PlainSnapshotSchema). */
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
  const next = trainingMachine.transition(snapshot, event, inertScope(snapshot));
  return { snapshot: next, accepted };
}

// XState's transition() builds a throwaway actor, and with it the machine's whole initial state,
// on every call: ~30 µs, ten times the transition itself and most of a training step's
// bookkeeping. This machine has only assign actions (no children, delays, sent or emitted events),
// so one inert scope, built as xstate's own createInertActorScope builds it, serves every
// transition and yields the same snapshots. `machine.transition(snapshot, event, scope)` is
// xstate's internal API, pinned at xstate 5.33.3 (package.json, exact): the property test
// test/machines/fold-vs-public.prop.test.ts checks it against the public pure `transition()` for
// random settings and event sequences; re-run it on any xstate upgrade.
let scope: AnyActorScope | null = null;
function inertScope(snapshot: TrainingSnapshot): AnyActorScope {
  if (scope) return scope;
  const self = createActor(trainingMachine, { input: snapshot.context.settings });
  scope = {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: () => {},
  } as unknown as AnyActorScope;
  return scope;
}

/** The state's flat name: the active states (warmup, training, plateau) are children of one
 * parent state in the machine, but every log, view and `state --json` names them flat. */
export function stateName(snapshot: TrainingSnapshot): TrainingStateName {
  const value = snapshot.value;
  return typeof value === 'string' ? value : value.active;
}

export function toPlain(snapshot: TrainingSnapshot): PlainSnapshot {
  return { value: stateName(snapshot), context: structuredClone(snapshot.context) };
}

/** A snapshot from data. Stored snapshots name states flat (`training`, as they always have); the
 * active ones live under the machine's parent state `active`. */
export function fromPlain(plain: PlainSnapshot): TrainingSnapshot {
  const value = isActiveState(plain.value) ? { active: plain.value } : plain.value;
  return trainingMachine.resolveState({ value, context: structuredClone(plain.context) });
}

function isActiveState(name: TrainingStateName): name is ActiveState {
  return name === 'warmup' || name === 'training' || name === 'plateau';
}
