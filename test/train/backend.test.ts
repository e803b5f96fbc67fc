import { describe, expect, it } from 'vitest';
import { BackendError, initBackend } from '../../src/train/backend.js';

describe('initBackend', () => {
  it('wasm: versions, threads, idempotent', async () => {
    const first = await initBackend('wasm');
    expect(first.info).toEqual({ name: 'wasm', version: '4.22.0', tfjsVersion: '4.22.0', threads: 1 });
    expect(first.tf.getBackend()).toBe('wasm');
    const t = performance.now();
    const again = await initBackend('wasm');
    expect(performance.now() - t).toBeLessThan(50);
    expect(again.info).toBe(first.info);
  });

  it("'tensorflow' without tfjs-node is a one-line BackendError; 'auto' falls back to wasm", async () => {
    const error = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as Error).message).toMatch(/^backend "tensorflow" needs @tensorflow\/tfjs-node, which could not be loaded: /);
    expect((error as Error).message).not.toContain('\n');
    expect((await initBackend('auto')).info.name).toBe('wasm');
  });

  it('switches to cpu and back', async () => {
    const cpu = await initBackend('cpu');
    expect(cpu.info.name).toBe('cpu');
    expect(cpu.info.version).toBe('4.22.0');
    expect(cpu.tf.getBackend()).toBe('cpu');
    const t = cpu.tf.tensor([1, 2, 3]);
    const wasm = await initBackend('wasm');
    expect(wasm.tf.getBackend()).toBe('wasm');
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
    t.dispose();
  });
});
