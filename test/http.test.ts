import { Writable } from 'node:stream';
import { expect } from 'chai';
import { createAgentSchema, updateAgentSchema } from '../src/agents/agent.schema.js';
import { credentialsSchema } from '../src/auth/auth.schema.js';
import { createLogger } from '../src/logger.js';
import { createSessionSchema } from '../src/sessions/session.schema.js';
import { expectError } from './support/expect-error.js';
import { harness, registerUser, request, startExtraApi } from './support/harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

describe('HTTP basics', () => {
  describe('X-Request-Id', () => {
    it('echoes the request id the client sent', async () => {
      const res = await request('GET', '/health', { headers: { 'X-Request-Id': 'client-req.42:abc' } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('x-request-id')).to.equal('client-req.42:abc');
    });

    it('generates a UUID when the client sends none', async () => {
      const a = await request('GET', '/health');
      const b = await request('GET', '/health');
      expect(a.headers.get('x-request-id')).to.match(UUID);
      expect(b.headers.get('x-request-id')).to.match(UUID);
      expect(a.headers.get('x-request-id')).to.not.equal(b.headers.get('x-request-id'));
    });

    it('replaces a request id that is not a sane token with a generated one', async () => {
      const res = await request('GET', '/health', { headers: { 'X-Request-Id': 'bad id with spaces <script>' } });
      expect(res.headers.get('x-request-id')).to.match(UUID);
    });

    it('puts the echoed request id into error bodies too', async () => {
      const res = await request('GET', '/v1/me', { headers: { 'X-Request-Id': 'trace-me-123' } });
      const error = expectError(res, 401, 'unauthorized');
      expect(error.request_id).to.equal('trace-me-123');
    });
  });

  describe('unknown routes and methods', () => {
    it('answers 404 route_not_found for a path no route serves', async () => {
      const error = expectError(await request('GET', '/v1/nope'), 404, 'route_not_found');
      expect(error.message).to.contain('/v1/nope');
    });

    it('answers 404 route_not_found outside /v1 too', async () => {
      expectError(await request('POST', '/definitely/not/here', { body: {} }), 404, 'route_not_found');
    });

    it('answers 405 method_not_allowed for a known path with the wrong method', async () => {
      const { token } = await registerUser();
      const res = await request('PUT', '/v1/agents', { token, body: {} });
      expectError(res, 405, 'method_not_allowed');
      expect(res.headers.get('allow')).to.be.a('string').and.match(/GET/);
    });
  });

  describe('health and readiness', () => {
    it('GET /health answers 200 without a token', async () => {
      const res = await request('GET', '/health');
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({ status: 'ok' });
    });

    it('GET /ready answers 200 when PostgreSQL and Redis are up', async () => {
      const res = await request('GET', '/ready');
      expect(res.status).to.equal(200);
      expect(res.body.status).to.equal('ready');
      expect(res.body.checks.postgres.status).to.equal('up');
      expect(res.body.checks.redis.status).to.equal('up');
      expect(res.body).to.not.have.property('down');
    });

    it('GET /ready answers 503 naming redis when Redis is unreachable, and the instance still shuts down', async () => {
      const web = await startExtraApi({ REDIS_URL: 'redis://127.0.0.1:1' });
      try {
        const res = await request('GET', '/ready', { base: web.url });
        expect(res.status).to.equal(503);
        expect(res.body.status).to.equal('unavailable');
        expect(res.body.down).to.deep.equal(['redis']);
        expect(res.body.checks.redis.status).to.equal('down');
        expect(res.body.checks.postgres.status).to.equal('up');
        // Liveness does not depend on Redis.
        expect((await request('GET', '/health', { base: web.url })).status).to.equal(200);
      } finally {
        const started = Date.now();
        await web.close();
        expect(Date.now() - started, 'close() duration in ms').to.be.below(5000);
      }
      expect(web.server.listening).to.equal(false);
    });
  });

  describe('security headers', () => {
    it('sets nosniff, frame and content-security-policy headers on API responses', async () => {
      const res = await request('GET', '/health');
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(res.headers.get('x-frame-options')).to.equal('SAMEORIGIN');
      expect(res.headers.get('content-security-policy')).to.contain("script-src 'self'");
      expect(res.headers.get('x-powered-by')).to.equal(null);
    });

    it('sets them on error responses too', async () => {
      const res = await request('GET', '/v1/nope');
      expect(res.status).to.equal(404);
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
    });
  });

  describe('OpenAPI and docs', () => {
    it('serves an OpenAPI 3.1 document listing the core routes', async () => {
      const res = await request('GET', '/openapi.json');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.contain('application/json');
      const doc = res.body;
      expect(doc.openapi).to.match(/^3\.1\./);
      expect(doc.info.title).to.be.a('string');
      expect(doc.info.version).to.be.a('string');
      expect(doc.components.securitySchemes.bearer).to.include({ type: 'http', scheme: 'bearer' });
      expect(doc.paths).to.include.keys(
        '/v1/auth/register',
        '/v1/auth/login',
        '/v1/me',
        '/v1/agents',
        '/v1/agents/{id}',
        '/v1/sessions',
        '/v1/sessions/{id}',
        '/v1/sessions/{id}/messages',
        '/health',
        '/ready',
      );
      expect(doc.paths['/v1/agents']).to.include.keys('get', 'post');
      expect(doc.paths['/v1/agents/{id}']).to.include.keys('get', 'patch', 'delete');
      expect(doc.paths['/v1/agents/{id}'].get.parameters).to.deep.include({
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string' },
      });
      // Public routes opt out of the global bearer requirement; resource routes keep it.
      expect(doc.paths['/v1/auth/register'].post.security).to.deep.equal([]);
      expect(doc.paths['/v1/agents'].post).to.not.have.property('security');
      expect(doc.security).to.deep.equal([{ bearer: [] }]);
      const operationIds = Object.values(doc.paths).flatMap((ops: any) => Object.values(ops).map((op: any) => op.operationId));
      expect(new Set(operationIds).size, 'operationIds are unique').to.equal(operationIds.length);
    });

    it('publishes exactly the request schemas the routes validate with', async () => {
      const { body: doc } = await request('GET', '/openapi.json');
      const bodySchema = (path: string, method: string) => doc.paths[path][method].requestBody.content['application/json'].schema;
      expect(bodySchema('/v1/agents', 'post')).to.deep.equal(createAgentSchema);
      expect(bodySchema('/v1/agents/{id}', 'patch')).to.deep.equal(updateAgentSchema);
      expect(bodySchema('/v1/sessions', 'post')).to.deep.equal(createSessionSchema);
      expect(bodySchema('/v1/auth/register', 'post')).to.deep.equal(credentialsSchema);
    });

    it('serves human-readable docs at /docs with their assets', async () => {
      const res = await request('GET', '/docs');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.contain('text/html');
      expect(res.body).to.contain('<html').and.to.contain('swagger-ui');
      const init = await request('GET', '/docs/assets/init.js');
      expect(init.status).to.equal(200);
      expect(init.body).to.contain('/openapi.json');
      const bundle = await fetch(`${harness().web.url}/docs/assets/swagger-ui-bundle.js`);
      expect(bundle.status).to.equal(200);
      expect(bundle.headers.get('content-type')).to.contain('javascript');
      await bundle.arrayBuffer();
    });
  });

  describe('access log', () => {
    it('logs one line per request with its context and never a password, token or the JWT secret', async () => {
      const chunks: string[] = [];
      const sink = new Writable({
        write(chunk, _enc, done) {
          chunks.push(String(chunk));
          done();
        },
      });
      const secret = harness().jwtSecret;
      const web = await startExtraApi({ LOG_LEVEL: 'info' }, createLogger('info', sink));
      let token: string;
      let password: string;
      let userId: string;
      try {
        const user = await registerUser({ base: web.url });
        password = user.password;
        userId = user.user.id;
        const login = await request('POST', '/v1/auth/login', { base: web.url, body: { email: user.email, password } });
        expect(login.status).to.equal(200);
        token = login.body.access_token;
        const me = await request('GET', '/v1/me', { base: web.url, token, headers: { 'X-Request-Id': 'redaction-check-1' } });
        expect(me.status).to.equal(200);
        // A failed login and a bad token must not leak either.
        await request('POST', '/v1/auth/login', { base: web.url, body: { email: user.email, password: `${password}-wrong` } });
        await request('GET', '/v1/me', { base: web.url, token: `${token}x` });
      } finally {
        await web.close();
      }
      const text = chunks.join('');
      expect(text).to.not.be.empty;
      expect(text).to.not.contain(password);
      expect(text).to.not.contain(token);
      expect(text).to.not.contain(token.split('.')[2]); // not even the signature alone
      expect(text).to.not.contain(secret);

      const lines = text.trim().split('\n').map((l) => JSON.parse(l));
      const meLine = lines.find((l) => l.request_id === 'redaction-check-1');
      expect(meLine, 'access log line for GET /v1/me').to.exist;
      expect(meLine).to.include({ method: 'GET', route: '/v1/me', status: 200, user_id: userId });
      expect(meLine.duration_ms).to.be.a('number').and.at.least(0);
      const registerLine = lines.find((l) => l.route === '/v1/auth/register');
      expect(registerLine).to.include({ method: 'POST', status: 201 });
      expect(registerLine.request_id).to.match(UUID);
      expect(registerLine).to.have.property('user_id', null);
    });
  });
});
