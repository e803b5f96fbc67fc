// Everything the page sends is checked here before it reaches the library: bad input is a 4xx with
// a one-line JSON message naming the field, never an exception that escapes a route.
import { ConfigError, validatePartialConfig, type ConfigInput } from '../config.js';
import { CorruptLogError, RunExistsError, RunLockedError, StoreError, UnknownRunError, SchemaVersionError, MissingBlobError } from '../log/errors.js';
import { SchemaError } from '../log/events.js';
import { RUN_ID_RE } from '../log/store.js';
import { PointError } from '../run/history.js';
import { formatPoint, parseCheckpointPoint, parsePoint, POINT_FORMS, PointSyntaxError } from '../run/points.js';
import { JobLimitError } from './jobs.js';

/** An error with an HTTP status and a message for the page. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 503,
    message: string,
    readonly code = 'BAD_REQUEST',
  ) {
    super(message);
  }
}

/** Status and JSON body for any error a route throws. */
export function errorResponse(err: unknown): { status: number; body: { error: string; code: string } } {
  const message = (err as Error)?.message?.split('\n')[0] ?? String(err);
  const pick = (status: number, code: string) => ({ status, body: { error: message, code } });
  if (err instanceof HttpError) return pick(err.status, err.code);
  if (err instanceof UnknownRunError) return pick(404, err.code);
  if (err instanceof StoreError) return pick(400, err.code);
  if (err instanceof PointError) return pick(400, 'BAD_POINT');
  if (err instanceof ConfigError) return pick(400, 'BAD_CONFIG');
  if (err instanceof RunExistsError) return pick(409, err.code);
  if (err instanceof RunLockedError) return pick(409, err.code);
  // By name: run/export.js loads tfjs, which the server loads only when a job needs it.
  if ((err as Error)?.name === 'ExportError') return pick(409, 'NOT_STOPPED');
  if (err instanceof JobLimitError) return pick(429, 'TOO_MANY_JOBS');
  if (err instanceof CorruptLogError || err instanceof SchemaError || err instanceof SchemaVersionError || err instanceof MissingBlobError) {
    return pick(500, (err as { code?: string }).code ?? 'CORRUPT');
  }
  return pick(500, 'INTERNAL');
}

export function runIdParam(value: string | undefined): string {
  if (typeof value !== 'string' || !RUN_ID_RE.test(value)) {
    throw new HttpError(400, `invalid run id ${JSON.stringify(value ?? '')}: letters, digits, ".", "_" or "-", at most 100, not starting with "." "_" "-"`, 'BAD_RUN_ID');
  }
  return value;
}

/** A point in the one grammar of points.ts (`best`, `last`, `ckpt:K`, `step:N`, an event number). */
export function pointParam(value: unknown, field: string): string {
  try {
    if (typeof value !== 'string') throw new PointSyntaxError('not a string');
    return formatPoint(parsePoint(value, field));
  } catch {
    throw new HttpError(400, `${field} must be ${POINT_FORMS}, got ${JSON.stringify(value ?? null)}`, 'BAD_POINT');
  }
}

/** `?at=`: any point (default: the last event). */
export function atParam(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  return pointParam(value, 'at');
}

export function seqParam(value: string | undefined, field: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^-?\d{1,12}$/.test(value)) throw new HttpError(400, `${field} must be an integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** `?limit=`: 1..max, default `fallback`. */
export function limitParam(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1 || Number(value) > max) throw new HttpError(400, `limit must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`, 'BAD_LIMIT');
  return Number(value);
}

/** `?cursor=`: the `nextCursor` of a previous page, checked against its shape. */
export function cursorParam(value: string | undefined, shape: RegExp): string | null {
  if (value === undefined || value === '') return null;
  if (!shape.test(value)) throw new HttpError(400, `cursor must be the nextCursor of a previous page, got ${JSON.stringify(value.slice(0, 120))}`, 'BAD_CURSOR');
  return value;
}

export function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

export function allowOnly(body: Record<string, unknown>, keys: readonly string[]): void {
  const extra = Object.keys(body).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new HttpError(400, `unknown field ${extra.map((k) => `"${k}"`).join(', ')}; allowed: ${keys.join(', ')}`);
}

/**
 * A config (train) or overrides (branch) from the page, checked against the schema. Paths in it
 * (csv:PATH, module:PATH, initFrom) are checked next, against the data roots (data-roots.ts).
 */
export function configParam(value: unknown, field: string): ConfigInput {
  if (value === undefined || value === null) return {};
  try {
    return validatePartialConfig(value, field);
  } catch (err) {
    if (err instanceof ConfigError) throw new HttpError(400, err.message, 'BAD_CONFIG');
    throw err;
  }
}

/** An export folder's name (created under the server's export folder). */
export function exportNameParam(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !RUN_ID_RE.test(value)) {
    throw new HttpError(400, `name must be a folder name (letters, digits, ".", "_" or "-", at most 100), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Which checkpoint to export: best, last, a checkpoint number (`ckpt:K`) or any point (points.ts). */
export function checkpointParam(value: unknown): string {
  if (value === undefined || value === null || value === '') return 'best';
  const text = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : value;
  try {
    if (typeof text !== 'string') throw new PointSyntaxError('not a string');
    return formatPoint(parseCheckpointPoint(text, 'checkpoint'));
  } catch {
    throw new HttpError(400, `checkpoint must be best, last or a checkpoint number (or ckpt:K, step:N), got ${JSON.stringify(value)}`, 'BAD_POINT');
  }
}
