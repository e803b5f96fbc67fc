// Private copies of a run's LevelDB that live outside a store: a reader's copy when the store's
// tmp/ cannot take it (a read-only store, a full disk) and fsck's copies (fsck never writes into
// the store it checks). A process killed while holding one (SIGKILL, a crash) cannot remove it, so
// every such folder carries its creator's pid, and the next retrace command removes the folders
// whose process is gone (a SIGKILLed fsck used to leave a full copy of the run behind forever).
// "Gone" is judged by this machine's process table: a temp folder shared with other machines or
// PID namespaces would need the host in the name as well.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pidAlive } from './processes.js';

/** `retrace-<kind>-<pid>-<hex>` in the system's temp folder. */
const SCRATCH = /^retrace-(?:read|fsck)-(\d+)-[0-9a-f]+$/;

/** A fresh path (not created) for a private copy of `kind` owned by this process. */
export function systemScratchPath(kind: 'read' | 'fsck'): string {
  return path.join(os.tmpdir(), `retrace-${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/**
 * Removes the private copies in the system's temp folder whose process no longer runs. Never
 * throws (a folder it cannot remove stays for a later sweep). Returns how many it removed.
 */
export async function sweepSystemScratch(dir = os.tmpdir()): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    const m = SCRATCH.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      await fsp.rm(path.join(dir, n), { recursive: true, force: true });
      removed += 1;
    } catch {
      // Someone else's, or already going: left for a later sweep.
    }
  }
  return removed;
}
