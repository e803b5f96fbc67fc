// How commands speak: with --json, stdout carries exactly one JSON line (NDJSON for `log`) and
// everything else (progress, warnings, errors) goes to stderr; errors are one line and map to
// exit codes: 0 success, 1 the operation failed, 2 bad usage.
import { ConfigError } from '../config.js';
import { PointError, PointSyntaxError } from '../run/points.js';

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
  if (err instanceof PointSyntaxError || (err instanceof PointError && /^bad /.test(err.message))) return 2;
  return 1;
}

/** One line: the message without a stack; ENOSPC and friends in words. LevelDB's errors say what
 * happened in their `cause` ("Database failed to open" ← "IO error: …: No space left on device"). */
export function describeError(err: unknown): string {
  const e = err as (NodeJS.ErrnoException & { cause?: unknown }) | null;
  const isLevel = typeof e?.code === 'string' && e.code.startsWith('LEVEL_');
  const cause = isLevel && e!.cause instanceof Error ? (e!.cause as NodeJS.ErrnoException) : null;
  const first = (x: Error) => x.message.split('\n')[0]!;
  const text = e instanceof Error ? (cause ? `${first(e)}: ${first(cause)}` : first(e)) : String(err).split('\n')[0]!;
  if (e && typeof e === 'object') {
    if (e.code === 'ENOSPC' || cause?.code === 'ENOSPC' || /No space left on device/i.test(text)) {
      return `disk full while writing (${text}); everything committed before is kept, resume the run when there is space`;
    }
    if (e.code === 'EIO' || cause?.code === 'EIO' || /Input\/output error/i.test(text)) return `write error (${text}); everything committed before is kept`;
  }
  return text;
}
