// What `onRecord` listeners are handed is what the log stores, `at` included: a listener that
// writes a projection of the run as it trains (the TensorBoard writer, the UI's live view) must
// agree with one made later from the log.
import { describe, expect, it } from 'vitest';
import { openStore, resume, train, type LogRecord } from '../../src/index.js';
import { tempDir } from './helpers.js';

describe('onRecord', () => {
  it('hands listeners the records exactly as the log stores them, in train and in resume', async () => {
    const store = await tempDir();
    const config = { runId: 'r', dataset: 'iris', backend: 'wasm' as const, batchSize: 8, stopPoint: 2, checkpoints: 2 };
    const heard: LogRecord[] = [];
    const controller = new AbortController();
    await train({
      store,
      config,
      signal: controller.signal,
      onRecord: (r) => {
        heard.push(r);
        // Stop half way, so a resume delivers the rest.
        if (r.type === 'step.finished' && r.data.step === 20) controller.abort();
      },
    });
    await resume('r', { store, onRecord: (r) => heard.push(r) });
    const s = await openStore(store);
    try {
      const logged: LogRecord[] = [];
      for await (const r of s.events('r')) logged.push(r);
      expect(heard.length).toBeGreaterThan(40);
      expect(heard).toEqual(logged);
    } finally {
      await s.close();
    }
  });
});
