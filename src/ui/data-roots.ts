// Which files a request may make the server read. The dashboard runs as the user who started it,
// so a path in a request could name any file that user can read (`csv:/etc/shadow` once came back
// as a job error quoting its first line). Every path a config from the page gives — csv:PATH,
// module:PATH, initFrom — must resolve (realpath: symlinks followed) inside one of the data roots
// (`retrace ui --data-root DIR`, repeatable; default the folder the server started in), and the
// config the job runs with names the resolved file, so what was checked is what is read.
// Failures of jobs that read such files never show the file's words to the page: see
// `publicJobError`.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ConfigError, type ConfigInput } from '../config.js';
import { RetraceStoreError } from '../log/errors.js';
import { PointError } from '../run/history.js';
import { JobLimitError } from './jobs.js';
import { HttpError } from './validate.js';

/** A config key that names a file or folder, and how its path is written in the value. */
interface FileKey {
  key: 'dataset' | 'model' | 'initFrom';
  /** The value's prefix before the path ('' when the whole value is the path). */
  prefix: string;
}

/**
 * Every config key that makes a run read a file. A key added to the config that takes a path must
 * be added here: test/ui/data-roots.test.ts fails for a string key that is in neither this list nor
 * `NOT_PATHS` there.
 */
export const FILE_KEYS: readonly FileKey[] = [
  { key: 'dataset', prefix: 'csv:' },
  { key: 'model', prefix: 'module:' },
  { key: 'initFrom', prefix: '' },
];

export class DataRootError extends Error {
  override name = 'DataRootError';
}

function inside(file: string, root: string): boolean {
  return file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export class DataRoots {
  private constructor(
    /** The roots as real paths (symlinks resolved), for checking resolved files. */
    readonly real: readonly string[],
    /** The roots as given (absolute), for checking a path before it is resolved. */
    private readonly given: readonly string[],
    private readonly cwd: string,
  ) {}

  /**
   * Checks the roots: each must be an existing folder. Relative roots are taken from `cwd`.
   * @throws DataRootError naming the root that is missing or not a folder.
   */
  static async open(roots: readonly string[], cwd: string): Promise<DataRoots> {
    const list = roots.length > 0 ? roots : [cwd];
    const given: string[] = [];
    const real: string[] = [];
    for (const root of list) {
      const abs = path.resolve(cwd, root);
      let resolved: string;
      try {
        resolved = await fsp.realpath(abs);
        if (!(await fsp.stat(resolved)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new DataRootError(`--data-root ${root}: ${code === 'ENOENT' ? 'no such folder' : code === 'ENOTDIR' ? 'not a folder' : `cannot open it (${code ?? (err as Error).message})`}; give an existing folder`);
      }
      given.push(abs);
      real.push(resolved);
    }
    return new DataRoots(real, given, cwd);
  }

  /** The roots for messages. */
  describe(): string {
    return this.real.join(', ');
  }

  /**
   * The same config with every file it names (FILE_KEYS) replaced by its real path, after checking
   * each lies inside a root. `field` names the config in messages ("config", "overrides").
   * @throws HttpError 403 (FORBIDDEN_KEY) for any path when the server is not on loopback only;
   *   403 (FORBIDDEN_PATH) for a path outside every root, symlinks out included;
   *   400 (NO_SUCH_FILE) for a path inside a root that does not exist. Messages name the key, the
   *   path as given and the roots, never anything read from the file.
   */
  async check(config: ConfigInput, field: string, opts: { loopback: boolean }): Promise<ConfigInput> {
    const out: Record<string, unknown> = { ...config };
    for (const { key, prefix } of FILE_KEYS) {
      const value = config[key];
      if (typeof value !== 'string' || !value.startsWith(prefix)) continue;
      if (!opts.loopback) {
        throw new HttpError(403, `${field}.${key}: file paths (csv:, module:, initFrom) are only accepted when the dashboard listens on loopback`, 'FORBIDDEN_KEY');
      }
      const given = value.slice(prefix.length);
      out[key] = `${prefix}${await this.resolve(given, `${field}.${key}`, value)}`;
    }
    return out as ConfigInput;
  }

  private async resolve(given: string, where: string, value: string): Promise<string> {
    const outside = () =>
      new HttpError(403, `${where}: ${JSON.stringify(value)} is outside the data roots (${this.describe()}); put the file under one of them or start retrace ui with --data-root DIR`, 'FORBIDDEN_PATH');
    if (given === '' || given.includes('\0')) throw outside();
    const abs = path.resolve(this.cwd, given);
    // Outside every root as written: refused before touching the disk, so the answer says
    // nothing about which files exist elsewhere.
    if (!this.given.some((r) => inside(abs, r)) && !this.real.some((r) => inside(abs, r))) throw outside();
    let real: string;
    try {
      real = await fsp.realpath(abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new HttpError(400, `${where}: ${JSON.stringify(value)}: no such file under the data roots`, 'NO_SUCH_FILE');
      throw new HttpError(400, `${where}: ${JSON.stringify(value)}: cannot resolve it (${code ?? 'error'})`, 'NO_SUCH_FILE');
    }
    // A symlink inside a root that points out of every root is outside.
    if (!this.real.some((r) => inside(real, r))) throw outside();
    return real;
  }
}

/** True when a config makes a run read files the user named (a CSV, a model module, initFrom). */
export function readsUserFiles(config: Partial<Record<string, unknown>> | null | undefined): boolean {
  if (!config) return false;
  return FILE_KEYS.some(({ key, prefix }) => typeof config[key] === 'string' && (config[key] as string).startsWith(prefix) && (config[key] as string).length > prefix.length);
}

/**
 * Messages known to hold no words from the file (the file's path, counts, line numbers): shown as
 * they are. Anything else from a job that read a user file may quote it (a CSV cell, a header, a
 * JSON parser's excerpt, a module's syntax error) and is reduced to its kind and line.
 */
const CONTENT_FREE = [
  /^CSV file not found: /,
  /^CSV path is a directory, not a file: /,
  /: file is empty; expected a header row and data rows$/,
  /: no data rows after the header$/,
  /: only \d+ data rows?; need at least 2 /,
  /: line \d+: expected \d+ columns \(as in the header\), got \d+$/,
  /^model module not found: /,
  /^initFrom: no model\.json in /,
];

/** Longest job error kept (a message can be built from a long input). */
const MAX_ERROR = 2_000;

/**
 * The error a job shows to API clients. For a job reading user files, messages that could quote
 * a file are replaced by `<what> failed (<ErrorName>[ at line N]): ...`; the full message goes to
 * the server's own terminal (`log`).
 */
export function publicJobError(err: unknown, opts: { readsUserFiles: boolean; what: string; log: (line: string) => void }): string {
  const message = ((err as Error)?.message ?? String(err)).split('\n')[0]!;
  const name = typeof (err as Error)?.name === 'string' ? (err as Error).name : 'Error';
  // retrace's own errors about the store, points, the config and the run's state quote none of
  // the user's files (ExportError by name: its module loads tfjs).
  const own = err instanceof RetraceStoreError || err instanceof PointError || err instanceof ConfigError || err instanceof HttpError || err instanceof JobLimitError || name === 'ExportError';
  if (!opts.readsUserFiles || own || CONTENT_FREE.some((re) => re.test(message))) return message.length > MAX_ERROR ? `${message.slice(0, MAX_ERROR)}…` : message;
  opts.log(`${opts.what}: ${message}`);
  const line = /\bline (\d+)\b/.exec(message);
  return `${opts.what} failed (${name}${line ? ` at line ${line[1]}` : ''}) on a file it was given; the details may quote the file, so they are shown only in the terminal running retrace ui`;
}
