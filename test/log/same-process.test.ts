// A run opened for writing and read in the same process share one LevelDB handle; readers that
// come and go while the writer opens must neither close the database under it nor, through the
// private copies they read, truncate its table files (both crashed the process: "Database is not
// open", and a SIGBUS in LevelDB's table reader). Run in a child process: a crash is the failure.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'writer-opening-race.mts');

describe('one process, one run, a writer and readers', () => {
  it('survives readers opening and closing around a writer that opens, 60 times', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fixture, '60'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^59 reads \d+ errs 0 \[ 60 \]$/);
  });
});
