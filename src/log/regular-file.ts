// Reading a file of the store only if it is a regular file. A folder in its place gave a bare
// EISDIR; a named pipe (FIFO) in its place would block the read forever, and a device such as
// /dev/zero never ends. The type comes from the open descriptor (fstat), so a swap between a check
// and the open is no hole; O_NONBLOCK keeps the open of a FIFO from waiting for a writer (it
// changes nothing for regular files).
import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** What a non-regular path is, for a message: "a folder", "a named pipe (FIFO)", … */
export function describeNonFile(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Thrown when the path exists but is not a regular file; `code` is EISDIR for a folder. */
export class NotRegularFileError extends Error {
  override name = 'NotRegularFileError';
  constructor(
    readonly path: string,
    /** "a folder", "a named pipe (FIFO)", … */
    readonly what: string,
    readonly code: 'EISDIR' | 'ENOTREG',
  ) {
    super(`${path} is ${what}, not a file`);
  }
}

/**
 * The bytes of `file` (or its text, with an encoding). Errors of the open (ENOENT, EACCES, …) are
 * thrown as they are; a path that is not a regular file throws NotRegularFileError before a byte
 * is read.
 */
export async function readRegularFile(file: string): Promise<Buffer>;
export async function readRegularFile(file: string, encoding: 'utf8'): Promise<string>;
export async function readRegularFile(file: string, encoding?: 'utf8'): Promise<Buffer | string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFileError(file, describeNonFile(st), st.isDirectory() ? 'EISDIR' : 'ENOTREG');
    return encoding ? await fh.readFile(encoding) : await fh.readFile();
  } finally {
    await fh.close().catch(() => {});
  }
}
