// The in-memory store against the storage contract, and its takeover (fencing).
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { MemoryRunStore } from '../../src/storage/memory.js';
import { dropMemoryStore, openRunStore } from '../../src/storage/open.js';
import { RunFencedError } from '../../src/storage/types.js';
import { runStoreContract } from './contract.js';

runStoreContract('memory', async () => {
  const name = `contract-${randomUUID()}`;
  let store = await openRunStore(`memory:${name}`);
  return {
    store,
    async reopen() {
      await store.close();
      store = await openRunStore(`memory:${name}`);
      return store;
    },
  };
});

describe('the in-memory store', () => {
  it('is shared by name within the process, until dropped', async () => {
    const a = await openRunStore('memory:shared-test');
    expect(a.kind).toBe('memory');
    expect(a.location).toBe('memory:shared-test');
    const w = await a.createRun('r');
    await w.append([{ type: 'step.finished', data: 1 }], { sync: true });
    await w.close();
    const b = await openRunStore('memory:shared-test');
    expect(await b.listRuns()).toEqual(['r']);
    expect(await (await openRunStore('memory:other-test')).listRuns()).toEqual([]);
    expect(dropMemoryStore('shared-test')).toBe(true);
    expect(await (await openRunStore('memory:shared-test')).listRuns()).toEqual([]);
  });

  it('a takeover bumps the fence: the old writer can append nothing more', async () => {
    const s = new MemoryRunStore();
    const old = await s.createRun('r');
    await old.append([{ type: 'step.finished', data: 0 }], { sync: true });
    const next = await s.takeOver('r');
    expect(next.fence).toBeGreaterThan(old.fence);
    const err = await old.append([{ type: 'step.finished', data: 1 }], { sync: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFencedError);
    expect(err).toMatchObject({ runId: 'r', fence: old.fence, current: next.fence });
    await old.close(); // leaves the run to the new writer
    expect(await next.append([{ type: 'step.finished', data: 1 }], { sync: true })).toEqual([1]);
    expect(await next.lastSeq()).toBe(1);
    await next.close();
  });
});
