// How commands speak: with --json, stdout carries exactly one JSON line (NDJSON for `log`) and
// everything else (progress, warnings, errors) goes to stderr; errors are one line and map to
// exit codes: 0 success, 1 the operation failed, 2 bad usage.
import { ConfigError } from '../config.js';
import { PointError } from '../run/history.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Output {
  json: boolean;
  /** The command's result: JSON on stdout with --json, else the human text. */
  result(value: unknown, human: () => string): void;
  /** Progress and notes for people: stderr with --json, stdout otherwise. */
  info(line: string): void;
  warn(line: string): void;
}

export function makeOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
    },
    info(line) {
      (json ? process.stderr : process.stdout).write(`${line}\n`);
    },
    warn(line) {
      process.stderr.write(`warning: ${line}\n`);
    },
  };
}

/** Bad usage (exit 2): wrong flags or values the user typed. Everything else is a failed operation. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError) return 2;
  if (err instanceof PointError && /^bad /.test(err.message)) return 2;
  return 1;
}

/** One line: the message without a stack; ENOSPC and friends in words. */
export function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && 'code' in e) {
    if (e.code === 'ENOSPC') return `disk full while writing (${e.message.split('\n')[0]}); everything committed before is kept, resume the run when there is space`;
    if (e.code === 'EIO') return `write error (${e.message.split('\n')[0]}); everything committed before is kept`;
  }
  const message = e instanceof Error ? e.message : String(err);
  return message.split('\n')[0]!;
}
