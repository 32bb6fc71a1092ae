import { ValidationError } from '../errors.js';
import { isUuid } from './ids.js';

/** Opaque keyset cursor: the sort key and id of the last row of the previous page. */
export interface Cursor {
  at: Date;
  id: string;
}

export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url');
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function decodeCursor(raw: string | undefined, field = 'cursor'): Cursor | undefined {
  if (raw === undefined || raw === '') return undefined;
  try {
    const [at, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [string, string];
    // Only the form encodeCursor writes: a crafted year like -4800 would reach PostgreSQL out of range (500).
    const date = typeof at === 'string' && ISO_INSTANT.test(at) ? new Date(at) : new Date(Number.NaN);
    if (!Number.isNaN(date.getTime()) && typeof id === 'string' && isUuid(id)) return { at: date, id };
  } catch {
    // fall through to the validation error
  }
  throw new ValidationError([{ path: `query.${field}`, message: 'is not a valid cursor', keyword: 'format' }]);
}

/** `(key, id) < cursor` for newest-first lists, as a MikroORM filter. */
export function olderThan(key: string, cursor: Cursor | undefined): Record<string, unknown> {
  if (!cursor) return {};
  return { $or: [{ [key]: { $lt: cursor.at } }, { [key]: cursor.at, id: { $lt: cursor.id } }] };
}

export const pageQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
    cursor: { type: 'string', maxLength: 200 },
  },
} as const;

export interface PageQuery {
  limit: number;
  cursor?: string;
}

export function pageOf(schema: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    required: ['data', 'next_cursor'],
    properties: { data: { type: 'array', items: schema }, next_cursor: { type: ['string', 'null'] } },
  };
}
