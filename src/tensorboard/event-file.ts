// Event files on disk: their names, an atomic write of a whole file, and appends.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir } from '../log/blobs.js';
import { encodeEvent, type TbEvent } from './proto.js';
import { frameRecord } from './tfrecord.js';

/**
 * `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>`, as TensorFlow's writers name them
 * (TensorBoard reads every file whose name contains `tfevents`, in name order). retrace takes the
 * seconds, host and pid of the process that wrote the run's part (the creating process for a whole
 * run), and `n` = that process's place among the run's processes (0 = the one that created it).
 */
export function eventFileName(p: { seconds: number; hostname: string; pid: number; n: number }): string {
  const host = p.hostname.replace(/[^A-Za-z0-9._-]/g, '_') || 'localhost';
  return `events.out.tfevents.${String(Math.floor(p.seconds)).padStart(10, '0')}.${host}.${p.pid}.${p.n}`;
}

/**
 * The seconds in a resumed process's file name. TensorBoard reads a run's files in name order, and
 * this one must come after every file an earlier process of the run wrote (each named at or before
 * the times of the records it wrote): a later second than the log's last record, even when the
 * kill and the resume fall in the same second (the pids that follow do not sort as numbers).
 * `now` in seconds since the epoch, `lastRecordAt` an ISO time.
 */
export function resumedFileSeconds(now: number, lastRecordAt: string): number {
  return Math.max(Math.floor(now), Math.floor(Date.parse(lastRecordAt) / 1000) + 1);
}

/** The framed bytes of events, in order. */
export function encodeEvents(events: TbEvent[]): Buffer {
  return Buffer.concat(events.map((e) => frameRecord(encodeEvent(e))));
}

/**
 * Replaces `file` with `bytes` atomically: a temp file (its name without `tfevents`, so TensorBoard
 * never reads a half-written one), fsync, rename, fsync the folder. A failure leaves the old file.
 */
export async function writeEventFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.retrace-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const fh = await fsp.open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/**
 * An event file held open for appending, synchronously (used at checkpoints and by `--follow`,
 * where the writes are a few kilobytes). Writes go to the file it opened: if `retrace tensorboard`
 * replaces that file meanwhile (an atomic rename), the replacement stays whole and this writer's
 * later events go to the replaced file, never into the middle of the new one.
 */
export class EventFileAppender {
  private fd: number | null;
  private position = 0;

  /** `create`: a new file, refused (EEXIST) if one is there; else an existing file to extend. */
  constructor(
    readonly file: string,
    mode: 'create' | 'extend',
  ) {
    this.fd = fs.openSync(file, mode === 'create' ? 'wx' : 'r+');
    if (mode === 'extend') this.position = fs.fstatSync(this.fd).size;
  }

  append(events: TbEvent[]): void {
    if (events.length === 0) return;
    if (this.fd === null) throw new Error(`${this.file} is closed`);
    const bytes = encodeEvents(events);
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.position + done);
    this.position += bytes.length;
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    fs.closeSync(fd);
  }
}
