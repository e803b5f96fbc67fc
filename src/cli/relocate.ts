// `--dataset csv:PATH` and `--model module:PATH` on commands that rebuild a recorded run (resume,
// replay, export): where a file the run depends on is now, when it moved. The run keeps its
// recorded data and code; the new place is accepted only when the fingerprint matches.
import type { Command } from 'commander';
import type { Relocation } from '../run/environment.js';
import { UsageError } from './output.js';

export function addRelocationFlags(cmd: Command): Command {
  return cmd
    .option('--dataset <csv:PATH>', "where the run's CSV is now, if it moved (accepted when its data match the recorded fingerprint)")
    .option('--model <module:PATH>', "where the run's model module is now, if it moved (accepted when its source matches the recorded fingerprint)");
}

export function relocationFrom(flags: Record<string, unknown>): Relocation {
  const out: Relocation = {};
  for (const [key, prefix] of [['dataset', 'csv:'], ['model', 'module:']] as const) {
    const value = flags[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !value.startsWith(prefix) || value.length === prefix.length) {
      throw new UsageError(`--${key} must be ${prefix}PATH (where the run's file is now), got "${String(value)}"`);
    }
    out[key] = value;
  }
  return out;
}
