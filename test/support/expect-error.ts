import { expect } from 'chai';
import type { TestResponse } from './harness.js';

/**
 * Asserts API.md's error contract: the status, the stable code, the full error body shape,
 * and an X-Request-Id header equal to `error.request_id`. Returns the error for more checks.
 */
export function expectError(res: TestResponse, status: number, code: string) {
  expect(res.status, `status (body: ${JSON.stringify(res.body)})`).to.equal(status);
  expect(res.body, 'error body').to.be.an('object').with.property('error');
  const error = res.body.error;
  expect(error).to.have.all.keys('code', 'message', 'details', 'request_id');
  expect(error.code).to.equal(code);
  expect(error.message).to.be.a('string').and.not.be.empty;
  expect(error.details).to.be.an('array');
  expect(error.request_id).to.be.a('string').and.not.be.empty;
  expect(res.headers.get('x-request-id')).to.equal(error.request_id);
  return error as { code: string; message: string; details: any[]; request_id: string };
}

/** The `path` of every validation detail, e.g. `['name', 'params.temperature']`. */
export function detailPaths(res: TestResponse): string[] {
  return (res.body?.error?.details ?? []).map((d: { path: string }) => d.path);
}
