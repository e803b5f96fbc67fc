// One schema for one fact: machine events and log records share their payload schemas, floats the
// schema marks are numbers in memory and "NaN"/"Infinity" strings only in what the log stores, and
// every other field stays strict.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startMachine, step, toPlain } from '../../machines/fold.js';
import { isTrainingEvent, TRAINING_EVENT_DATA, TRAINING_EVENT_TYPES } from '../../machines/training.events.js';
import { canonicalJson } from '../../src/log/codec.js';
import { canonicalRecordData, encodeRecordData, encodeStoredSnapshot, parseRecord, RECORD_SCHEMAS, sameFacts, SchemaError } from '../../src/log/events.js';

const raw = (type: string, data: unknown) => ({ v: 1, seq: 5, type, at: '2026-01-01T00:00:00.000Z', data });

describe('the event schema', () => {
  it('builds every machine record from the machine event schema (one definition)', () => {
    for (const type of TRAINING_EVENT_TYPES) {
      const record = RECORD_SCHEMAS[type];
      // Every field of the machine event is a field of the record, with the very same schema.
      for (const [key, schema] of Object.entries(TRAINING_EVENT_DATA[type].shape)) {
        expect((record.shape as Record<string, unknown>)[key], `${type}.${key}`).toBe(schema);
      }
    }
    expect(TRAINING_EVENT_TYPES.filter((t) => isTrainingEvent({ type: t }))).toHaveLength(7);
    for (const t of ['run.created', 'state.changed', 'snapshot.taken', 'process.attached', 'run.forced']) {
      expect(isTrainingEvent({ type: t }), t).toBe(false);
    }
  });

  it('keeps NaN and ±Infinity losses as numbers in memory and writes them as the strings logs have always held', () => {
    for (const [x, stored] of [
      [Number.NaN, '"NaN"'],
      [Number.POSITIVE_INFINITY, '"Infinity"'],
      [Number.NEGATIVE_INFINITY, '"-Infinity"'],
      [0.25, '0.25'],
    ] as const) {
      const record = { type: 'step.finished', data: { step: 3, loss: x, lr: 0.1, examplesSeen: 24 } };
      const text = canonicalRecordData(record);
      expect(text).toBe(`{"examplesSeen":24,"loss":${stored},"lr":0.1,"step":3}`);
      const back = parseRecord('r', raw('step.finished', JSON.parse(text)));
      expect(back.data).toEqual(record.data);
      expect(Object.is((back.data as { loss: number }).loss, x)).toBe(true);
      expect(sameFacts(back, record)).toBe(true);
    }
    const evalRecord = parseRecord('r', raw('eval.finished', { step: 0, valLoss: 'NaN', valAccuracy: 0.5 }));
    expect(Number.isNaN((evalRecord.data as { valLoss: number }).valLoss)).toBe(true);
  });

  it('round-trips every float of a loss field exactly (decode ∘ encode = id, bytes stable)', () => {
    fc.assert(
      fc.property(fc.double(), (loss) => {
        const record = { type: 'step.finished', data: { step: 1, loss, lr: 0.01, examplesSeen: 8 } };
        const text = canonicalRecordData(record);
        const back = parseRecord('r', raw('step.finished', JSON.parse(text)));
        expect(Object.is((back.data as { loss: number }).loss, Object.is(loss, -0) ? 0 : loss)).toBe(true);
        expect(canonicalRecordData(back)).toBe(text);
      }),
    );
  });

  it('rejects a non-finite number anywhere the schema does not mark a float, naming the field', () => {
    expect(() => encodeRecordData({ type: 'step.finished', data: { step: 1, loss: 1, lr: Number.NaN, examplesSeen: 8 } })).toThrow(SchemaError);
    expect(() => encodeRecordData({ type: 'step.finished', data: { step: 1, loss: 1, lr: Number.NaN, examplesSeen: 8 } })).toThrow(/lr/);
    expect(() => encodeRecordData({ type: 'eval.finished', data: { step: 1, valLoss: 1, valAccuracy: Number.POSITIVE_INFINITY } })).toThrow(/valAccuracy/);
    // A stored "NaN" string is a float only where the schema says so.
    expect(() => parseRecord('r', raw('step.finished', { step: 1, loss: 1, lr: 'NaN', examplesSeen: 8 }))).toThrow(/event 5 \(step.finished\) is malformed: lr/);
    // canonicalJson itself stays strict: a NaN in a config can never be written.
    expect(() => canonicalJson({ config: { lr: Number.NaN } }, 'data')).toThrow('data.config.lr is NaN');
  });

  it('validates a checkpoint\'s stored machine snapshot when read back: floats decoded, nothing cast, a damaged one named', () => {
    const settings = { stepsPerEpoch: 2, totalSteps: 4, batchSize: 2, warmupSteps: 0, baseLr: 0.1, minLr: 0.01, lrFactor: 0.5, minDelta: 0, plateauPatience: 2, cooldown: 0, earlyStopping: false, earlyStopPatience: 2, monitor: 'valLoss' as const, divergenceThreshold: null };
    let s = startMachine(settings);
    s = step(s, { type: 'eval.finished', data: { step: 0, valLoss: Number.NaN, valAccuracy: 0 } }).snapshot;
    s = step(s, { type: 'checkpoint.committed', data: { kind: 'initial', index: 0, step: 0, weightsHash: 'h0' } }).snapshot;
    const plain = toPlain(s);
    const stored = encodeStoredSnapshot(plain) as { context: { lastEval: unknown; best: { metric: unknown } } };
    // The form snapshots have always been stored in.
    expect(stored.context.lastEval).toEqual({ step: 0, valLoss: { $float: 'NaN' }, valAccuracy: 0 });
    expect(stored.context.best.metric).toEqual({ $float: 'NaN' });
    const tensor = { name: 'w', shape: [1], dtype: 'float32', hash: 'a'.repeat(64), bytes: 4 };
    const data = { kind: 'initial', index: 0, step: 0, weightsHash: 'h0', examplesSeen: 0, weights: [tensor], optimizer: [], optimizerKind: 'sgd', machine: stored };
    const back = parseRecord('r', raw('checkpoint.committed', JSON.parse(JSON.stringify(data))));
    expect(back.type === 'checkpoint.committed' && back.data.machine).toEqual(plain);
    const damaged = JSON.parse(JSON.stringify(data));
    damaged.machine.context.stopReason = 'tired';
    expect(() => parseRecord('r', raw('checkpoint.committed', damaged))).toThrow(/event 5 \(checkpoint.committed\) is malformed: machine.context.stopReason/);
    const extra = JSON.parse(JSON.stringify(data));
    extra.machine.value = 'sleeping';
    expect(() => parseRecord('r', raw('checkpoint.committed', extra))).toThrow(/machine.value/);
  });
});
