// Durations given on the command line (`gc --grace 10m`).
import { UsageError } from './output.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Milliseconds of a duration flag: a number ≥ 0 with an optional unit (ms, s, m, h, d; seconds
 * without one), e.g. `600`, `90s`, `10m`, `1.5h`. Anything else (NaN, negative, empty, infinite,
 * an unknown unit) is a UsageError naming the flag.
 */
export function parseDurationMs(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] ?? 's']! : NaN;
  if (!m || !Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) {
    throw new UsageError(`${flag} must be a duration ≥ 0: seconds, or a number with ms, s, m, h or d (like 600, 10m, 2h), got "${raw}"`);
  }
  return ms;
}
