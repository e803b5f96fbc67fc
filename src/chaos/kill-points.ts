// The named kill points of kill-hook.ts (kept apart so that importing the names never installs the hook).
export const KILL_POINTS = [
  'step-after',
  'blob-before',
  'blob-after',
  'batch-before',
  'batch-after',
  'sync-batch-before',
  'sync-batch-after',
  'committed-before',
  'committed-after',
  'gc-condemn-before',
  'gc-condemn-after',
  'gc-unlink-before',
  'gc-unlink-after',
] as const;
export type KillPoint = (typeof KILL_POINTS)[number];
