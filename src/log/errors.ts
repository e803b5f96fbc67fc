// The store's errors. Each has a one-line message that names what is wrong (the run, the seq, the
// hash, the process) and a stable `code` for programs; none of them wraps a LevelDB error in a way
// that hides which run it was about.

/** What every error of the store has in common. */
export abstract class RetraceStoreError extends Error {
  abstract readonly code: string;
}

/** The folder is not a retrace store, is a store of a newer format, or a run id is not acceptable. */
export class StoreError extends RetraceStoreError {
  readonly code = 'RETRACE_STORE';
  constructor(message: string, readonly dir?: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/** No run of that id exists in the store. */
export class UnknownRunError extends RetraceStoreError {
  readonly code = 'RETRACE_UNKNOWN_RUN';
  constructor(readonly runId: string, knownRuns: readonly string[]) {
    super(`unknown run "${runId}"${describeKnown(knownRuns)}`);
    this.name = 'UnknownRunError';
  }
}

function describeKnown(known: readonly string[]): string {
  if (known.length === 0) return ' (the store has no runs)';
  const shown = known.slice(0, 5).map((r) => `"${r}"`).join(', ');
  const more = known.length > 5 ? ` and ${known.length - 5} more` : '';
  return ` (known runs: ${shown}${more})`;
}

/** createRun() of an id that is already taken. */
export class RunExistsError extends RetraceStoreError {
  readonly code = 'RETRACE_RUN_EXISTS';
  constructor(
    readonly runId: string,
    /** The live process writing it, if any. */
    readonly owner: RunOwner | null = null,
  ) {
    super(
      `run "${runId}" already exists${
        owner ? ` and is being written by another process (pid ${owner.pid}${owner.hostname ? ` on ${owner.hostname}` : ''}, \`${owner.command}\`)` : ''
      }`,
    );
    this.name = 'RunExistsError';
  }
}

/** The contents of `<run>/owner.json`: the process that holds a run open for writing. */
export interface RunOwner {
  pid: number;
  hostname: string;
  command: string;
  startedAt: string;
}

/** Another process (or another handle in this one) holds the run open for writing. */
export class RunLockedError extends RetraceStoreError {
  readonly code = 'RETRACE_RUN_LOCKED';
  constructor(
    readonly runId: string,
    readonly owner: RunOwner | null,
    sameProcess = false,
  ) {
    super(
      sameProcess
        ? `run "${runId}" is already open for writing in this process (pid ${process.pid})`
        : owner
          ? `run "${runId}" is being written by another process (pid ${owner.pid}${
              owner.hostname ? ` on ${owner.hostname}` : ''
            }, \`${owner.command}\`, since ${owner.startedAt})`
          : `run "${runId}" is being written by another process (its owner.json is missing, so which process is unknown)`,
    );
    this.name = 'RunLockedError';
  }
}

/** The run's log fails an integrity check: a checksum, a gap, or records lost below the committed seq. */
export class CorruptLogError extends RetraceStoreError {
  readonly code = 'RETRACE_CORRUPT_LOG';
  constructor(
    readonly runId: string,
    /** The first seq the problem concerns (-1 when it is about the run as a whole). */
    readonly seq: number,
    detail: string,
  ) {
    super(`run "${runId}": ${detail}`);
    this.name = 'CorruptLogError';
  }
}

/** A blob named by the log is not in the store. */
export class MissingBlobError extends RetraceStoreError {
  readonly code = 'RETRACE_MISSING_BLOB';
  constructor(readonly hash: string) {
    super(`blob ${hash} is missing from the store`);
    this.name = 'MissingBlobError';
  }
}

/** A blob's file cannot be read at all (a folder in its place, no permission). */
export class UnreadableBlobError extends RetraceStoreError {
  readonly code = 'RETRACE_UNREADABLE_BLOB';
  constructor(
    readonly hash: string,
    readonly file: string,
    reason: string,
  ) {
    super(`blob ${hash} cannot be read: ${file} ${reason}; move it aside and run \`retrace fsck\``);
    this.name = 'UnreadableBlobError';
  }
}

/** A blob's bytes do not hash to its name. */
export class CorruptBlobError extends RetraceStoreError {
  readonly code = 'RETRACE_CORRUPT_BLOB';
  constructor(
    readonly hash: string,
    readonly actualHash: string,
  ) {
    super(`blob ${hash} is corrupt (its bytes hash to ${actualHash})`);
    this.name = 'CorruptBlobError';
  }
}

/** A record was written by a newer retrace than this one can read. */
export class SchemaVersionError extends RetraceStoreError {
  readonly code = 'RETRACE_SCHEMA_VERSION';
  constructor(
    readonly runId: string,
    readonly seq: number,
    readonly version: number,
    readonly maxSupported: number,
  ) {
    super(
      `run "${runId}": event ${seq} has schema version ${version}, newer than this retrace reads (up to ${maxSupported}); upgrade retrace`,
    );
    this.name = 'SchemaVersionError';
  }
}
