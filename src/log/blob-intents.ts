// Blob intents: how a writer tells every gc "I am about to name these blobs in an event".
//
//   <store>/blobs/intents/<pid>-<random>.json   {"format":"retrace-blob-intent","version":1,
//                                                "host","pid","startedAt","runId","hashes":[…]}
//
// A writer creates its intent, naming the hashes, BEFORE it checks, writes or reuses any of those
// blobs, and removes it only AFTER the event naming them is durable. gc never deletes a blob named
// by an intent, and reads intents again after it has moved its candidates out of the way (see
// gc.ts for why that ordering makes every interleaving safe). The intents live inside blobs/, so a
// blob folder shared by several processes or machines carries them along; no file lock is used
// (Node has no portable one, and they are unreliable on shared filesystems).
//
// An intent matters only while its writer lives, so it is written atomically (temp file + rename)
// but not fsynced: after a power loss no writer is left to need it. An intent whose writer died is
// stale: whatever that writer made durable is in its run's log by then, so gc treats the intent as
// absent and removes it. Died means: written on this machine (same host name and, where the OS
// has one, the same /etc/machine-id) either during an earlier boot (another boot id) or by a pid
// that is no longer alive. An intent of another machine is never judged stale (its pid means
// nothing here): gc keeps its blobs and reports it.
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { StoreError } from './errors.js';
import { isErrno, pidAlive } from './processes.js';

export const INTENT_FORMAT = 'retrace-blob-intent';

const HASH = z.string().regex(/^[0-9a-f]{64}$/);

const IntentFile = z.object({
  format: z.literal(INTENT_FORMAT),
  version: z.literal(1),
  host: z.string(),
  pid: z.number().int().positive(),
  startedAt: z.string(),
  runId: z.string().nullable(),
  /** /etc/machine-id and the kernel's boot id where the OS has them (null elsewhere). */
  machineId: z.string().nullable(),
  bootId: z.string().nullable(),
  hashes: z.array(HASH),
});
export type IntentFile = z.infer<typeof IntentFile>;

const INTENT_NAME = /^\d+-[0-9a-f]+\.json$/;
/** Temp files of an intent being written (writeFileAtomic's names). */
const INTENT_TEMP = /^\d+-[0-9a-f]+\.json\.tmp-/;

function readId(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** This machine, as intents name it. */
const MACHINE = { machineId: readId('/etc/machine-id'), bootId: readId('/proc/sys/kernel/random/boot_id') };

/** Written on this machine (else its pid says nothing here). */
function sameMachine(i: IntentFile): boolean {
  if (i.host !== os.hostname()) return false;
  return i.machineId === null || MACHINE.machineId === null || i.machineId === MACHINE.machineId;
}

/** Its writer is gone: an earlier boot of this machine, or a pid of this boot no longer alive. */
function isStale(i: IntentFile): boolean {
  if (!sameMachine(i)) return false;
  if (i.bootId !== null && MACHINE.bootId !== null && i.bootId !== MACHINE.bootId) return true;
  return i.pid !== process.pid && !pidAlive(i.pid);
}

export function intentsDir(blobsDir: string): string {
  return path.join(blobsDir, 'intents');
}

/** Writes `content` to `file` through a temp file and a rename: readers never see half of it. */
async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.writeFile(tmp, content, { flag: 'wx' });
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The blobs one writer is about to name in one event. `add()` before the blobs are checked or
 * written; `release()` after the event is durable. Not releasing (a failed append whose outcome is
 * unknown) is safe: the blobs are kept until the intent is stale (its process gone).
 */
export class BlobIntent {
  private readonly hashes = new Set<string>();
  private file: string | null = null;
  private released = false;
  /** Serializes add()/release(): the file always names every hash added so far. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly blobsDir: string,
    readonly runId: string | null = null,
  ) {}

  /** The hashes named so far. */
  get names(): string[] {
    return [...this.hashes];
  }

  /** Names `hashes` too; resolves once the intent file (visible to every gc) names them all. */
  add(hashes: Iterable<string>): Promise<void> {
    const task = this.queue.then(async () => {
      if (this.released) throw new Error('this blob intent was released; take a new one');
      const before = this.hashes.size;
      for (const h of hashes) this.hashes.add(h);
      if (this.file !== null && this.hashes.size === before) return;
      const dir = intentsDir(this.blobsDir);
      await fsp.mkdir(dir, { recursive: true });
      this.file ??= path.join(dir, `${process.pid}-${randomBytes(8).toString('hex')}.json`);
      const body: IntentFile = {
        format: INTENT_FORMAT,
        version: 1,
        host: os.hostname(),
        pid: process.pid,
        startedAt: new Date().toISOString(),
        runId: this.runId,
        machineId: MACHINE.machineId,
        bootId: MACHINE.bootId,
        hashes: [...this.hashes].sort(),
      };
      await writeAtomic(this.file, JSON.stringify(body) + '\n');
    });
    this.queue = task.catch(() => {});
    return task;
  }

  /** Removes the intent: call only once the event naming its blobs is durable. Idempotent. */
  release(): Promise<void> {
    const task = this.queue.then(async () => {
      this.released = true;
      if (this.file !== null) await fsp.rm(this.file, { force: true });
      this.file = null;
    });
    this.queue = task.catch(() => {});
    return task;
  }
}

export interface IntentScan {
  /** Every hash named by a live (or not provably dead) intent. */
  held: Set<string>;
  /** Intents counted in `held`. */
  live: number;
  /** Of `live`, intents written on another machine (never judged stale here). */
  otherHosts: Array<{ file: string; host: string; pid: number; runId: string | null; startedAt: string }>;
  /** Intents of dead processes of this host, removed. */
  staleRemoved: number;
}

/**
 * Reads every intent in `<blobsDir>/intents`. Intents of dead local processes are removed (unless
 * `removeStale` is false) and not counted. An intent file that cannot be read as an intent is a
 * StoreError: it may name blobs a writer is about to use, so gc must not guess.
 */
export async function scanIntents(blobsDir: string, opts: { removeStale?: boolean } = {}): Promise<IntentScan> {
  const dir = intentsDir(blobsDir);
  const out: IntentScan = { held: new Set(), live: 0, otherHosts: [], staleRemoved: 0 };
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return out;
    throw err;
  }
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    if (INTENT_TEMP.test(name)) {
      // A writer killed while writing its intent had not touched any blob yet.
      const pid = Number(/\.tmp-(\d+)-/.exec(name)?.[1] ?? NaN);
      if (opts.removeStale !== false && Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid)) await fsp.rm(file, { force: true });
      continue;
    }
    if (!INTENT_NAME.test(name)) continue;
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue; // released meanwhile
      throw err;
    }
    let parsed: IntentFile;
    try {
      parsed = IntentFile.parse(JSON.parse(text));
    } catch {
      throw new StoreError(
        `blob intent ${file} is not a readable intent; it may name blobs a writer is about to use, so gc deletes nothing (remove the file once no retrace process writes to this store)`,
      );
    }
    if (isStale(parsed)) {
      if (opts.removeStale !== false) {
        await fsp.rm(file, { force: true });
        out.staleRemoved += 1;
      }
      continue;
    }
    out.live += 1;
    for (const h of parsed.hashes) out.held.add(h);
    if (!sameMachine(parsed)) out.otherHosts.push({ file, host: parsed.host, pid: parsed.pid, runId: parsed.runId, startedAt: parsed.startedAt });
  }
  return out;
}
