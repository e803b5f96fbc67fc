// The one owner of the event log's schema version, and of the upcasters that bring a record
// written by an older version to today's shape before it is validated. A change to any stored
// shape bumps SCHEMA_VERSION and adds, for each record type it changes, one upcaster from the
// old version: `UPCASTERS[type][fromVersion] = (data) => dataOfTheNextVersion`. Records are
// upcast one version at a time, so a log written by any past version reads as today's.
//
// Version 1 is the first and still the current one: logs made by retrace 0.1.0 (rules 1) and by
// every release since hold version-1 records, and the changes since (rules 2 fields, start state,
// recorded files) only added optional fields that version 1 readers already accept. The registry
// is therefore empty; it is exercised by test/log/schema-version.test.ts and by the old-log
// fixtures (test/run/old-logs.test.ts), which read through it.

/** The version this release writes into every record's `v`. */
export const SCHEMA_VERSION = 1;

/** Turns the payload of a record of version `fromVersion` into the payload of version
 * `fromVersion + 1`. Pure; the input is parsed JSON and must not be mutated. */
export type Upcaster = (data: unknown) => unknown;

/** Per record type, per version it upgrades from. */
export type UpcasterRegistry = Readonly<Record<string, Readonly<Record<number, Upcaster>>>>;

export const UPCASTERS: UpcasterRegistry = {};

export class UpcastError extends Error {
  override name = 'UpcastError';
}

/**
 * A record's payload of version `v`, brought to SCHEMA_VERSION (or `target`) by applying each
 * version's upcaster in turn. A type with no upcaster for a version kept its shape at that step.
 * Throws UpcastError for a version below 1 or above the target (the caller reports a newer one as
 * SchemaVersionError first).
 */
export function upcast(type: string, v: number, data: unknown, registry: UpcasterRegistry = UPCASTERS, target = SCHEMA_VERSION): unknown {
  if (!Number.isSafeInteger(v) || v < 1 || v > target) throw new UpcastError(`a ${type} record has version ${v}; this release reads versions 1 to ${target}`);
  let out = data;
  for (let from = v; from < target; from += 1) {
    const up = registry[type]?.[from];
    if (up) out = up(out);
  }
  return out;
}
