// Opening a store by how a user names it: a folder is the LevelDB + files store; `memory:NAME` is
// an in-memory store shared by every open of that name in this process (tests, throw-away runs).
import { Store, type StoreOptions } from '../log/store.js';
import { MemoryBackend, MemoryRunStore, type MemoryStoreOptions } from './memory.js';
import type { RunStore } from './types.js';

export const MEMORY_PREFIX = 'memory:';

/** The in-memory stores of this process, by name. */
const memoryStores = new Map<string, MemoryBackend>();

export type OpenRunStoreOptions = StoreOptions & MemoryStoreOptions;

/**
 * Opens the store `spec` names: `memory:NAME` → a handle on the in-memory store NAME (created on
 * first use, kept for the life of the process); anything else is a folder → the LevelDB store
 * (Store.open: created when missing or empty unless `create: false`; StoreError otherwise).
 */
export async function openRunStore(spec: string, opts: OpenRunStoreOptions = {}): Promise<RunStore> {
  if (typeof spec !== 'string' || spec.length === 0) throw new TypeError('openRunStore: the store must be a folder or memory:NAME');
  if (spec.startsWith(MEMORY_PREFIX)) {
    const name = spec.slice(MEMORY_PREFIX.length);
    let backend = memoryStores.get(name);
    if (!backend) memoryStores.set(name, (backend = new MemoryBackend()));
    return new MemoryRunStore(spec, backend, opts);
  }
  return Store.open(spec, opts);
}

/** Forgets the in-memory store NAME (its runs and blobs); open handles keep what they hold. */
export function dropMemoryStore(name: string): boolean {
  return memoryStores.delete(name);
}
