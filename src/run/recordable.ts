// A run's creation is checked against the log's own reader before the run exists: whatever a
// config lets `train` or `branch` record must read back (issue: `--stop-point 1e17` trained, then
// every read failed on run.created). The record goes through the real codec and schema, so a new
// field or a tightened schema can never again let an unreadable run be created.
import { checkRunTotals, ConfigError } from '../config.js';
import { decodeValue, encodeKey, encodeValue } from '../log/codec.js';
import { encodeRecordData, parseRecord, SCHEMA_VERSION, type RunCreated } from '../log/events.js';

/**
 * Throws ConfigError (one line, naming the field) when `created` would not read back as event 0 of
 * its run, or when the steps or examples the run may reach (from its `origin`) are not safe
 * integers. Nothing is written.
 */
export function checkRecordable(created: RunCreated): void {
  const s = created.schedule;
  checkRunTotals({ totalSteps: s.totalSteps, batchSize: s.batchSize, trainingExamples: s.trainingExamples }, created.origin);
  const runId = created.runId;
  let encoded;
  try {
    encoded = encodeValue({ v: SCHEMA_VERSION, seq: 0, type: 'run.created', at: new Date(0).toISOString(), data: encodeRecordData({ type: 'run.created', data: created }) });
  } catch (err) {
    throw new ConfigError(`run ${runId} cannot be recorded: ${(err as Error).message}`);
  }
  try {
    parseRecord(runId, decodeValue(runId, encodeKey(0), encoded.value, { maxSchemaVersion: SCHEMA_VERSION }));
  } catch (err) {
    // e.g. "run r: event 0 (run.created) is malformed: settings.stepsPerEpoch: Too big: …"
    const detail = (err as Error).message.replace(/^run \S+: event 0 \(run\.created\) is malformed: /, '');
    throw new ConfigError(`run ${runId} cannot be recorded (its run.created event would not read back: ${detail}); lower the value behind it`);
  }
}
