// JSON has no NaN or ±Infinity (JSON.stringify turns them into null, losing them). Machine
// snapshots can hold them (a diverged evaluation), so they are written as {"$float": "NaN"}.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function toJsonSafe(value: unknown): Json {
  if (typeof value === 'number') return Number.isFinite(value) ? value : ({ $float: String(value) } as Json);
  if (Array.isArray(value)) return value.map(toJsonSafe);
  if (value && typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJsonSafe(v);
    return out;
  }
  return value as Json;
}

export function fromJsonSafe<T>(value: unknown): T {
  if (Array.isArray(value)) return value.map((v) => fromJsonSafe(v)) as T;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (keys.length === 1 && keys[0] === '$float' && typeof obj.$float === 'string') return Number(obj.$float) as T;
    return Object.fromEntries(keys.map((k) => [k, fromJsonSafe(obj[k])])) as T;
  }
  return value as T;
}
