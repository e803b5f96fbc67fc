// The command line refuses an in-memory store: it lives inside one process, so a command would
// train into it and lose everything at exit, or list nothing (the library is where it is useful).
import { describe, expect, it } from 'vitest';
import { cli, expectOneLine } from '../chaos/helpers.js';

describe('retrace --store memory:NAME', () => {
  it('is bad usage for every command, from the flag or RETRACE_STORE, and names what to give instead', async () => {
    const re = /^retrace: memory:x is an in-memory store, which lives only inside one process; give the command a folder \(--store DIR or RETRACE_STORE\)$/;
    expectOneLine(await cli(['runs', '--store', 'memory:x']), 2, re);
    expectOneLine(await cli(['train', '--dataset', 'iris', '--store', 'memory:x']), 2, re);
    expectOneLine(await cli(['state', 'a', '--json'], { env: { RETRACE_STORE: 'memory:x' } }), 2, re);
  });
});
