// Same config + seed in separate Node processes → identical weights, with the MLP's UNSEEDED
// dropout (its randomness comes from the per-step seeded Math.random stream).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { createSession } from '../../src/train/session.js';
import type { BackendInfo, Tf } from '../../src/train/types.js';
import { syntheticDataset, testConfig } from './helpers.js';

const run = promisify(execFile);
const child = fileURLToPath(new URL('./fixtures/train-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

interface ChildResult {
  initialHash: string;
  hash: string;
  losses: number[];
  backend: string;
}

async function train(args: object): Promise<ChildResult> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child, JSON.stringify(args)], { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult;
}

let tf: Tf;
let backend: BackendInfo;
beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
});

describe('determinism across processes', () => {
  it('two processes (one with disturbed global state) and this one agree bit for bit', async () => {
    const [a, b] = await Promise.all([train({ steps: 60 }), train({ steps: 60, perturb: true })]);
    expect(a.backend).toBe('wasm');
    expect(b.initialHash).toBe(a.initialHash);
    expect(b.losses).toEqual(a.losses);
    expect(b.hash).toBe(a.hash);

    // And in this process, after other sessions have come and gone.
    const dataset = syntheticDataset();
    const config = testConfig({ optimizer: 'adam', seed: 1234 });
    const throwaway = await createSession({ tf, backend, dataset, config: { ...config, seed: 9 } });
    throwaway.step(0, 0, 0.1);
    throwaway.dispose();
    const session = await createSession({ tf, backend, dataset, config });
    expect(session.weightsHash()).toBe(a.initialHash);
    const losses: number[] = [];
    for (let step = 0, seen = 0; step < 60; step++, seen += config.batchSize) losses.push(session.step(step, seen, config.lr).loss);
    expect(losses).toEqual(a.losses);
    expect(session.weightsHash()).toBe(a.hash);
    session.dispose();
  });

  it('dropout is live and keyed by the step number', async () => {
    const dataset = syntheticDataset();
    const session = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'sgd' }) });
    const state = session.capture();
    const lossAt = (step: number): number => {
      session.restore(state);
      return session.step(step, 32, 0.01).loss;
    };
    const l5 = lossAt(5);
    expect(lossAt(5)).toBe(l5);
    expect(lossAt(6)).not.toBe(l5); // same batch, different dropout mask
    session.dispose();
  });
});
