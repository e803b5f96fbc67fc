// Shared by the run tests: temp stores, a fast iris config, and raw access to a run's LevelDB for
// tampering (the way a damaged disk would).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll } from 'vitest';
import { encodeKey, encodeValue, type StoredRecord } from '../../src/log/codec.js';
import type { ConfigInput } from '../../src/config.js';
import { Store } from '../../src/log/store.js';
import type { RunHistory } from '../../src/run/history.js';
import { readRun } from '../../src/run/inspect.js';

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});

export async function tempDir(prefix = 'retrace-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** 120 training examples × 10 passes / batch 8 → 150 steps; 4 checkpoints at steps 37, 75, 112 and 150. */
export const IRIS: ConfigInput = {
  dataset: 'iris',
  model: 'mlp',
  backend: 'wasm',
  batchSize: 8,
  stopPoint: 10,
  checkpoints: 4,
  lr: 0.01,
  seed: 7,
};

export function runDbPath(store: string, runId: string): string {
  return path.join(store, 'runs', runId, 'log');
}

/** Rewrites one record in place with a valid checksum (a forged history) or raw bytes (damage). */
export async function tamper(
  store: string,
  runId: string,
  seq: number,
  change: (rec: StoredRecord) => StoredRecord | string,
): Promise<void> {
  const db = new ClassicLevel<string, string>(runDbPath(store, runId));
  await db.open();
  try {
    const raw = await db.get(encodeKey(seq));
    if (raw === undefined) throw new Error(`no record ${seq}`);
    const rec = JSON.parse(raw.slice(raw.indexOf(' ') + 1)) as StoredRecord;
    const changed = change(rec);
    await db.put(encodeKey(seq), typeof changed === 'string' ? changed : encodeValue(changed).value);
  } finally {
    await db.close();
  }
}

/** A run's whole history, read through its own Store (opened and closed here). */
export async function history(store: string, runId: string): Promise<RunHistory> {
  const s = await Store.open(store);
  try {
    return await readRun(s, runId);
  } finally {
    await s.close();
  }
}
