// The chaos harness's kill plan: where and when each child is SIGKILLed, drawn from a seeded
// generator so that a seed gives the same kills again. A plan is a timer (the harness kills the
// child's process group after a delay) or a hook point (the child kills itself at the Nth time
// it reaches a named point of the write protocol: kill-hook.ts); gc runs alongside get plans of
// their own. The child runner (child.ts) carries a plan out.
import type { KillPoint } from './kill-points.js';
import type { Reference } from './reference.js';

/** mulberry32: a small, fast, seedable generator; the same seed gives the same kills. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

export type KillPlan =
  /** The harness SIGKILLs the child's process group `afterMs` after the marker (or the spawn). */
  | { kind: 'timer'; afterMs: number; from: 'spawn' | 'marker' }
  /** The child SIGKILLs itself at the Nth occurrence of a named point (kill-hook.ts). */
  | { kind: 'hook'; point: KillPoint; n: number };

export function describePlan(plan: KillPlan | null): string {
  if (!plan) return 'no kill';
  return plan.kind === 'timer' ? `timer ${Math.round(plan.afterMs)}ms after ${plan.from}` : `${plan.point}:${plan.n}`;
}

const GC_POINTS = ['gc-condemn-before', 'gc-condemn-after', 'gc-unlink-before', 'gc-unlink-after'] as const;

/**
 * Whether this train/resume gets a concurrent gc, when it starts and where it is killed. A
 * generator of its own (seeded from the run's seed), so a seed's train kills stay what they were.
 */
export function planGc(rng: Rng): { delayMs: number; kill: KillPlan | null } | null {
  if (rng.next() >= 0.35) return null;
  const delayMs = rng.next() * 1500;
  const kill: KillPlan | null = rng.next() < 0.5 ? { kind: 'hook', point: rng.pick(GC_POINTS), n: rng.int(1, 3) } : null;
  return { delayMs, kill };
}


/**
 * Draws the next kill from the seeded generator. The first kill of every run falls in its first
 * steps and the second inside a checkpoint commit; later ones anywhere.
 */
export function planKill(rng: Rng, ctx: { command: 'train' | 'resume'; ref: Reference; fromStep: number; index?: number; branch?: boolean }): KillPlan {
  const remaining = Math.max(1, ctx.ref.totalSteps - ctx.fromStep);
  const fraction = remaining / Math.max(1, ctx.ref.totalSteps);
  if (ctx.index === 0) {
    // Sometimes (a branch: always) while the run records its creation: its start state's blobs,
    // its first synced batch (run.created) and committed.json.
    if (ctx.command === 'train' && (ctx.branch || rng.next() < 0.2)) {
      // A branch from a checkpoint starts from blobs already stored: no blob file is written then.
      const point = ctx.branch
        ? rng.pick(['sync-batch-before', 'sync-batch-after', 'committed-before', 'committed-after'] as const)
        : rng.pick(['blob-before', 'blob-after', 'sync-batch-before', 'sync-batch-after', 'committed-before', 'committed-after'] as const);
      return { kind: 'hook', point, n: point.startsWith('blob') ? rng.int(1, ctx.ref.blobsPerCheckpoint) : 1 };
    }
    return rng.next() < 0.7 || ctx.command !== 'train'
      ? { kind: 'hook', point: 'step-after', n: rng.int(1, 3) }
      : { kind: 'timer', afterMs: rng.next() * 300, from: 'marker' };
  }
  if (ctx.index === 1) {
    const point = rng.pick(['blob-before', 'blob-after', 'sync-batch-before', 'sync-batch-after', 'committed-before', 'committed-after'] as const);
    const n = point.startsWith('blob') ? rng.int(1, 2 * ctx.ref.blobsPerCheckpoint) : rng.int(1, 2);
    return { kind: 'hook', point, n };
  }
  const r = rng.next();
  if (r < 0.3) {
    // Timer: sometimes in the very first steps, otherwise anywhere in the rest of the run.
    const early = rng.next() < 0.3;
    const span = early ? 300 : ctx.ref.trainMs * fraction * 0.9;
    const afterMs = rng.next() * span;
    return ctx.command === 'train' ? { kind: 'timer', afterMs, from: 'marker' } : { kind: 'timer', afterMs: ctx.ref.startupMs * 0.9 + afterMs, from: 'spawn' };
  }
  if (r < 0.55) {
    // After the Nth step: biased to early steps (the first few included).
    const n = rng.next() < 0.25 ? rng.int(1, 3) : 1 + Math.floor(rng.next() ** 2 * remaining);
    return { kind: 'hook', point: 'step-after', n };
  }
  if (r < 0.75) {
    // Inside a checkpoint commit: among its blob files (first or second checkpoint of the process).
    return { kind: 'hook', point: rng.pick(['blob-before', 'blob-after'] as const), n: rng.int(1, 2 * ctx.ref.blobsPerCheckpoint) };
  }
  if (r < 0.92) {
    // Between a checkpoint's blobs, its synced event and committed.json (run.created's for train's first).
    return { kind: 'hook', point: rng.pick(['sync-batch-before', 'sync-batch-after', 'committed-before', 'committed-after'] as const), n: rng.int(1, 3) };
  }
  return { kind: 'hook', point: rng.pick(['batch-before', 'batch-after'] as const), n: rng.int(1, 4) };
}
