import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { ValidationError, type ValidationDetail } from '../errors.js';

export type JsonSchema = Record<string, unknown>;

const bodyAjv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
// Query strings arrive as text: coerce "50" to 50 there, never in bodies.
const queryAjv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false });
addFormats.default(bodyAjv);
addFormats.default(queryAjv);

function toDetail(err: ErrorObject, prefix: string): ValidationDetail {
  let path = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  let message = err.message ?? 'is invalid';
  if (err.keyword === 'required') {
    path = [path, (err.params as { missingProperty: string }).missingProperty].filter(Boolean).join('.');
    message = 'is required';
  } else if (err.keyword === 'additionalProperties') {
    path = [path, (err.params as { additionalProperty: string }).additionalProperty].filter(Boolean).join('.');
    message = 'is not allowed';
  } else if (err.keyword === 'enum') {
    message = `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return { path: prefix ? (path ? `${prefix}.${path}` : prefix) : path, message, keyword: err.keyword };
}

export function compile<T>(schema: JsonSchema, kind: 'body' | 'query' = 'body'): (value: unknown) => T {
  const validate: ValidateFunction = (kind === 'query' ? queryAjv : bodyAjv).compile(schema);
  return (value: unknown): T => {
    if (!validate(value)) {
      const seen = new Set<string>();
      const details = (validate.errors ?? [])
        .map((e) => toDetail(e, kind === 'query' ? 'query' : ''))
        .filter((d) => (seen.has(d.path + d.message) ? false : (seen.add(d.path + d.message), true)));
      throw new ValidationError(details);
    }
    return value as T;
  };
}
