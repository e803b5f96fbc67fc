// One place owns the schema version (src/log/schema-version.ts), and every record is read through
// its upcaster registry. Logs made by earlier releases are the test: every record of the store
// fixtures (retrace 0.1.0's rules-1 runs, and the release before the storage seam, with a
// diverged run's NaN and Infinity losses) reads through `parseRecord` — upcast, then validated,
// its config and its machine snapshots included — and re-encodes to exactly the bytes stored.
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/log/codec.js';
import { encodeRecordData, parseRecord, SCHEMA_VERSION } from '../../src/log/events.js';
import { upcast, UpcastError, UPCASTERS } from '../../src/log/schema-version.js';
import { Store } from '../../src/log/store.js';
import { tempDir } from '../run/helpers.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

describe('the schema version and its upcasters', () => {
  it('is version 1, with no upcaster needed yet (no stored shape has changed since version 1)', () => {
    expect(SCHEMA_VERSION).toBe(1);
    expect(Object.keys(UPCASTERS)).toEqual([]);
    const data = { step: 1 };
    expect(upcast('step.finished', 1, data)).toBe(data);
  });

  it('refuses versions it cannot read: below 1, newer than this release, not an integer', () => {
    expect(() => upcast('step.finished', 0, {})).toThrow(UpcastError);
    expect(() => upcast('step.finished', SCHEMA_VERSION + 1, {})).toThrow('a step.finished record has version 2; this release reads versions 1 to 1');
    expect(() => upcast('step.finished', 1.5, {})).toThrow(UpcastError);
    expect(() => parseRecord('r', { v: SCHEMA_VERSION + 1, seq: 3, type: 'step.finished', at: '', data: {} })).toThrow(/newer|version/);
    expect(() => parseRecord('r', { v: 0, seq: 3, type: 'step.finished', at: '', data: {} })).toThrow('run r: event 3 (step.finished) cannot be read: a step.finished record has version 0; this release reads versions 1 to 1');
  });

  describe.each(['rules1-store', 'pre-seam-store'])('every record of %s', (fixture) => {
    it('reads through the registry into the current schema and re-encodes to the bytes stored', async () => {
      const store = path.join(await tempDir(), 'store');
      await cp(path.join(FIXTURES, fixture, 'store'), store, { recursive: true });
      const s = await Store.open(store);
      const seen = new Set<string>();
      let nonFinite = 0;
      try {
        for (const runId of await s.listRuns()) {
          const log = await s.openRun(runId, 'read');
          try {
            for await (const raw of log.read({ from: 0 })) {
              const record = parseRecord(runId, raw);
              if (record.type === 'run.created') {
                // The recorded config is validated with the config's own schema, never cast.
                expect(typeof record.data.config.lr).toBe('number');
                const bad = structuredClone(raw) as { data: { config: Record<string, unknown> } };
                bad.data.config.lr = 'fast';
                expect(() => parseRecord(runId, bad as typeof raw)).toThrow(/event 0 \(run.created\) is malformed: config.lr/);
                bad.data.config.lr = 0.1;
                bad.data.config.epochs = 3;
                expect(() => parseRecord(runId, bad as typeof raw)).toThrow(/config: Unrecognized key/);
              }
              seen.add(record.type);
              if (record.type === 'step.finished' && !Number.isFinite(record.data.loss)) nonFinite += 1;
              // Floats are numbers in memory, and the stored bytes come back exactly.
              expect(canonicalJson(encodeRecordData(record)), `${runId}@${raw.seq}`).toBe(canonicalJson(raw.data));
            }
          } finally {
            await log.close();
          }
        }
      } finally {
        await s.close();
      }
      // Every record type the machine and the driver write was met.
      for (const type of ['run.created', 'step.finished', 'eval.finished', 'checkpoint.committed', 'state.changed', 'process.attached', 'stop.requested', 'run.resumed', 'export.finished']) {
        expect(seen, type).toContain(type);
      }
      if (fixture === 'pre-seam-store') expect(nonFinite).toBeGreaterThan(0);
    });
  });
});
