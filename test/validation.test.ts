import { expect } from 'chai';
import { detailPaths, expectError } from './support/expect-error.js';
import { api, registerUser, request, uniqueEmail, type TestResponse } from './support/harness.js';

const MIB = 1024 * 1024;

interface Target {
  method: 'POST' | 'PATCH';
  path: string;
  token?: string;
  /** A body that succeeds against this target, when `valid()` alone would not (login). */
  validBody?: Record<string, unknown>;
}

interface InvalidBody {
  body: unknown;
  /** Every one of these paths must be named in `error.details`. */
  paths: string[];
}

interface WriteRoute {
  route: string;
  /** Creates what the request needs (a user, the resource to patch). */
  setup(): Promise<Target>;
  valid(): Record<string, unknown>;
  /** A required field left out (routes without required fields use an empty PATCH body). */
  missing?: InvalidBody;
  wrongType: InvalidBody[];
  unknown: InvalidBody;
}

async function withUser(method: 'POST', path: string): Promise<Target> {
  const { token } = await registerUser();
  return { method, path, token };
}

async function withAgent(): Promise<Target> {
  const { token } = await registerUser();
  const res = await request('POST', '/v1/agents', { token, body: { name: 'patch-me', system_prompt: 'You help.', model: 'gpt-test' } });
  expect(res.status).to.equal(201);
  return { method: 'PATCH', path: `/v1/agents/${res.body.id}`, token };
}

async function withSession(): Promise<Target> {
  const { token } = await registerUser();
  const res = await request('POST', '/v1/sessions', { token, body: { title: 'patch me' } });
  expect(res.status).to.equal(201);
  return { method: 'PATCH', path: `/v1/sessions/${res.body.id}`, token };
}

const credentials = () => ({ email: uniqueEmail('validation'), password: 'correct horse battery' });

const routes: WriteRoute[] = [
  {
    route: 'POST /v1/auth/register',
    setup: async () => ({ method: 'POST', path: '/v1/auth/register' }),
    valid: credentials,
    missing: { body: { email: 'someone@example.com' }, paths: ['password'] },
    wrongType: [
      { body: { email: 42, password: 'correct horse battery' }, paths: ['email'] },
      { body: { email: 'not-an-email', password: 'short' }, paths: ['email', 'password'] },
    ],
    unknown: { body: { ...credentials(), role: 'admin' }, paths: ['role'] },
  },
  {
    route: 'POST /v1/auth/login',
    setup: async () => {
      const { email, password } = await registerUser();
      return { method: 'POST', path: '/v1/auth/login', validBody: { email, password } };
    },
    valid: credentials,
    missing: { body: { password: 'correct horse battery' }, paths: ['email'] },
    wrongType: [{ body: { email: 'someone@example.com', password: ['correct horse battery'] }, paths: ['password'] }],
    unknown: { body: { ...credentials(), remember_me: true }, paths: ['remember_me'] },
  },
  {
    route: 'POST /v1/agents',
    setup: () => withUser('POST', '/v1/agents'),
    valid: () => ({ name: 'valid-agent', system_prompt: 'You help.', model: 'gpt-test' }),
    missing: { body: { name: 'no-prompt' }, paths: ['system_prompt', 'model'] },
    wrongType: [
      { body: { name: 'typed', system_prompt: 'You help.', model: 'gpt-test', concurrency_limit: 'three' }, paths: ['concurrency_limit'] },
      { body: { name: 'typed', system_prompt: 'You help.', model: 'gpt-test', params: { temperature: 'hot' } }, paths: ['params.temperature'] },
      { body: { name: 'typed', system_prompt: 'You help.', model: 'gpt-test', tools: [1, 2] }, paths: ['tools.0', 'tools.1'] },
      { body: { name: 'typed', system_prompt: 'You help.', model: 'gpt-test', concurrency_limit: 51 }, paths: ['concurrency_limit'] },
    ],
    unknown: { body: { name: 'extra', system_prompt: 'You help.', model: 'gpt-test', owner_id: 'me' }, paths: ['owner_id'] },
  },
  {
    route: 'PATCH /v1/agents/:id',
    setup: withAgent,
    valid: () => ({ description: 'patched' }),
    missing: { body: {}, paths: [''] },
    wrongType: [
      { body: { tools: 'search' }, paths: ['tools'] },
      { body: { params: { max_tokens: 1.5 } }, paths: ['params.max_tokens'] },
    ],
    unknown: { body: { version: 7 }, paths: ['version'] },
  },
  {
    route: 'POST /v1/sessions',
    setup: () => withUser('POST', '/v1/sessions'),
    valid: () => ({ title: 'valid' }),
    // Every field is optional, so there is nothing to leave out.
    wrongType: [
      { body: { title: 42 }, paths: ['title'] },
      { body: { title: 'x'.repeat(201) }, paths: ['title'] },
    ],
    unknown: { body: { title: 'extra', user_id: '00000000-0000-0000-0000-000000000000' }, paths: ['user_id'] },
  },
  {
    route: 'PATCH /v1/sessions/:id',
    setup: withSession,
    valid: () => ({ title: 'renamed' }),
    missing: { body: {}, paths: [''] },
    wrongType: [{ body: { title: ['a'] }, paths: ['title'] }],
    unknown: { body: { message_count: 5 }, paths: ['message_count'] },
  },
];

function expectValidationError(res: TestResponse, paths: string[]) {
  const error = expectError(res, 422, 'validation_failed');
  expect(error.details).to.not.be.empty;
  for (const d of error.details) expect(d).to.include.keys('path', 'message', 'keyword');
  expect(detailPaths(res)).to.include.members(paths);
  for (const path of paths.filter(Boolean)) expect(error.message).to.contain(path);
}

describe('Request validation', () => {
  for (const r of routes) {
    describe(r.route, () => {
      it('accepts a valid body (control case)', async () => {
        const t = await r.setup();
        const res = await request(t.method, t.path, { token: t.token, body: t.validBody ?? r.valid() });
        expect(res.status, JSON.stringify(res.body)).to.be.oneOf([200, 201]);
      });

      if (r.missing) {
        const missing = r.missing;
        const what = missing.paths[0] ? `naming the missing ${missing.paths.join(' and ')}` : 'for an empty body (nothing to change)';
        it(`answers 422 validation_failed ${what}`, async () => {
          const t = await r.setup();
          expectValidationError(await request(t.method, t.path, { token: t.token, body: missing.body }), missing.paths);
        });

        it('answers 422 for a request with no body at all', async () => {
          const t = await r.setup();
          expectError(await request(t.method, t.path, { token: t.token }), 422, 'validation_failed');
        });
      }

      for (const wrong of r.wrongType) {
        it(`answers 422 validation_failed naming ${wrong.paths.join(', ')} for ${JSON.stringify(wrong.body).slice(0, 60)}`, async () => {
          const t = await r.setup();
          expectValidationError(await request(t.method, t.path, { token: t.token, body: wrong.body }), wrong.paths);
        });
      }

      it(`answers 422 validation_failed naming the unknown property ${r.unknown.paths[0]}`, async () => {
        const t = await r.setup();
        const res = await request(t.method, t.path, { token: t.token, body: r.unknown.body });
        expectValidationError(res, r.unknown.paths);
        expect(res.body.error.details.find((d: any) => d.path === r.unknown.paths[0]).keyword).to.equal('additionalProperties');
      });

      it('answers 413 payload_too_large for a body over 1 MiB', async () => {
        const t = await r.setup();
        const body = { ...r.valid(), padding: 'x'.repeat(MIB + 10) };
        expectError(await request(t.method, t.path, { token: t.token, body }), 413, 'payload_too_large');
      });

      it('answers 400 malformed_json for a body that is not valid JSON', async () => {
        const t = await r.setup();
        const raw = JSON.stringify(r.valid()).slice(0, -1) + ',}';
        expectError(await request(t.method, t.path, { token: t.token, rawBody: raw }), 400, 'malformed_json');
      });

      it('answers 415 unsupported_media_type for a body that is not application/json', async () => {
        const t = await r.setup();
        const res = await request(t.method, t.path, {
          token: t.token,
          rawBody: JSON.stringify(r.valid()),
          headers: { 'Content-Type': 'text/plain' },
        });
        expectError(res, 415, 'unsupported_media_type');
      });
    });
  }

  describe('body edge cases', () => {
    it('answers 413 for an oversized chunked body that declares no Content-Length, and the connection stays usable', async () => {
      const { token } = await registerUser();
      const encoder = new TextEncoder();
      const chunk = encoder.encode('x'.repeat(64 * 1024));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(encoder.encode('{"name":"big","model":"m","system_prompt":"'));
        },
        pull(controller) {
          if (sent > 2 * MIB) {
            controller.enqueue(encoder.encode('"}'));
            controller.close();
            return;
          }
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const res = await fetch(`${api()}/v1/agents`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expectError({ status: res.status, headers: res.headers, body: await res.json() }, 413, 'payload_too_large');
      // The next requests with bodies on the same keep-alive connection pool must not hang.
      for (let i = 0; i < 3; i++) {
        const next = await request('POST', '/v1/sessions', { token, body: { title: `after-413-${i}` }, timeoutMs: 5000 });
        expect(next.status).to.equal(201);
      }
    });

    it('keeps the connection usable after a 400 malformed_json', async () => {
      const { token } = await registerUser();
      for (let i = 0; i < 3; i++) {
        expectError(await request('POST', '/v1/sessions', { token, rawBody: `{"title": "broken${'x'.repeat(200_000)}` }), 400, 'malformed_json');
        expect((await request('POST', '/v1/sessions', { token, body: { title: 'fine' } })).status).to.equal(201);
      }
    });

    it('answers 422 for a JSON array where an object is expected', async () => {
      const { token } = await registerUser();
      const res = await request('POST', '/v1/sessions', { token, rawBody: '[]' });
      expectError(res, 422, 'validation_failed');
    });

    it('answers 400 malformed_json for a bare JSON scalar body', async () => {
      const { token } = await registerUser();
      expectError(await request('POST', '/v1/sessions', { token, rawBody: '"title"' }), 400, 'malformed_json');
    });

    it('accepts a +json media type with a charset', async () => {
      const { token } = await registerUser();
      const res = await request('POST', '/v1/sessions', {
        token,
        rawBody: JSON.stringify({ title: 'merge' }),
        headers: { 'Content-Type': 'application/merge-patch+json; charset=utf-8' },
      });
      expect(res.status).to.equal(201);
    });

    it('rejects a form-encoded body with 415 even on a public route', async () => {
      const res = await request('POST', '/v1/auth/login', {
        rawBody: 'email=a%40example.com&password=secret123',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      expectError(res, 415, 'unsupported_media_type');
    });
  });
});
