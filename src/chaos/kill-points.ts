// The named kill points of kill-hook.ts (kept apart so that importing the names never installs the hook).

/** Points inside `train`/`resume`/`branch`: the store's write protocol of a run. */
export const TRAIN_KILL_POINTS = [
  'step-after',
  'blob-before',
  'blob-after',
  'batch-before',
  'batch-after',
  'sync-batch-before',
  'sync-batch-after',
  'committed-before',
  'committed-after',
] as const;

/** Points inside `gc` (src/log/gc.ts). */
export const GC_KILL_POINTS = ['gc-condemn-before', 'gc-condemn-after', 'gc-unlink-before', 'gc-unlink-after'] as const;

/** Points inside `rm` (src/log/removal.ts). */
export const RM_KILL_POINTS = ['rm-plan-before', 'rm-move-before', 'rm-move-after'] as const;

/** Points inside `export` (src/run/export-dir.ts). */
export const EXPORT_KILL_POINTS = ['export-retire-before', 'export-retire-after', 'export-install-before', 'export-install-after'] as const;

export const KILL_POINTS = [...TRAIN_KILL_POINTS, ...GC_KILL_POINTS, ...RM_KILL_POINTS, ...EXPORT_KILL_POINTS] as const;
export type KillPoint = (typeof KILL_POINTS)[number];
export type TrainKillPoint = (typeof TRAIN_KILL_POINTS)[number];
