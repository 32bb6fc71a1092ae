import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { expectError } from './support/expect-error.js';
import { harness, registerUser, request, startExtraApi, uniqueEmail, withDb } from './support/harness.js';

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function expectTokenResponse(body: any, email: string) {
  expect(body).to.have.all.keys('user', 'access_token', 'token_type', 'expires_in');
  expect(body.token_type).to.equal('Bearer');
  expect(body.expires_in).to.equal(3600);
  expect(body.access_token).to.be.a('string');
  expect(body.user).to.have.all.keys('id', 'email', 'role', 'created_at');
  expect(body.user.email).to.equal(email.toLowerCase());
  expect(body.user.role).to.equal('user');
  expect(body.user.created_at).to.match(ISO_DATE);
  const claims = jwt.verify(body.access_token, harness().jwtSecret, { algorithms: ['HS256'] }) as jwt.JwtPayload;
  expect(claims.sub).to.equal(body.user.id);
  expect(claims.exp! - claims.iat!).to.equal(body.expires_in);
}

/** A token signed with the run's secret, for claims the API would never issue itself. */
function signWithRunSecret(claims: Record<string, unknown>, options: jwt.SignOptions = {}) {
  return jwt.sign(claims, harness().jwtSecret, { algorithm: 'HS256', ...options });
}

describe('Auth', () => {
  describe('POST /v1/auth/register', () => {
    it('creates an account and answers 201 with a user and a Bearer token', async () => {
      const email = uniqueEmail('register');
      const res = await request('POST', '/v1/auth/register', { body: { email, password: 'correct horse battery' } });
      expect(res.status).to.equal(201);
      expectTokenResponse(res.body, email);
    });

    it('stores the email lower-cased', async () => {
      const email = uniqueEmail('MiXeD').replace('example.com', 'Example.COM');
      const res = await request('POST', '/v1/auth/register', { body: { email, password: 'correct horse battery' } });
      expect(res.status).to.equal(201);
      expect(res.body.user.email).to.equal(email.toLowerCase());
    });

    it('answers 409 email_taken for an email that is already registered', async () => {
      const { email } = await registerUser();
      const res = await request('POST', '/v1/auth/register', { body: { email, password: 'another password' } });
      expectError(res, 409, 'email_taken');
    });

    it('treats emails case-insensitively when checking for duplicates', async () => {
      const { email } = await registerUser();
      const res = await request('POST', '/v1/auth/register', { body: { email: email.toUpperCase(), password: 'another password' } });
      expectError(res, 409, 'email_taken');
    });

    it('gives the admin role to emails listed in ADMIN_EMAILS', async () => {
      const email = uniqueEmail('admin');
      const web = await startExtraApi({ ADMIN_EMAILS: `someone@example.com, ${email.toUpperCase()}` });
      try {
        const admin = await request('POST', '/v1/auth/register', { base: web.url, body: { email, password: 'correct horse battery' } });
        expect(admin.status).to.equal(201);
        expect(admin.body.user.role).to.equal('admin');
        const other = await registerUser({ base: web.url });
        expect(other.user.role).to.equal('user');
      } finally {
        await web.close();
      }
    });
  });

  describe('POST /v1/auth/login', () => {
    it('answers 200 with a fresh token for the right password', async () => {
      const { email, password, user } = await registerUser();
      const res = await request('POST', '/v1/auth/login', { body: { email, password } });
      expect(res.status).to.equal(200);
      expectTokenResponse(res.body, email);
      expect(res.body.user.id).to.equal(user.id);
      const me = await request('GET', '/v1/me', { token: res.body.access_token });
      expect(me.status).to.equal(200);
      expect(me.body.id).to.equal(user.id);
    });

    it('accepts the email in any letter case', async () => {
      const { email, password, user } = await registerUser();
      const res = await request('POST', '/v1/auth/login', { body: { email: email.toUpperCase(), password } });
      expect(res.status).to.equal(200);
      expect(res.body.user.id).to.equal(user.id);
    });

    it('answers 401 invalid_credentials for a wrong password', async () => {
      const { email, password } = await registerUser();
      const res = await request('POST', '/v1/auth/login', { body: { email, password: `${password}x` } });
      expectError(res, 401, 'invalid_credentials');
    });

    it('answers an unknown email exactly like a wrong password', async () => {
      const { email, password } = await registerUser();
      const wrong = expectError(
        await request('POST', '/v1/auth/login', { body: { email, password: `${password}x` } }),
        401,
        'invalid_credentials',
      );
      const unknown = expectError(
        await request('POST', '/v1/auth/login', { body: { email: uniqueEmail('nobody'), password } }),
        401,
        'invalid_credentials',
      );
      expect(unknown.message).to.equal(wrong.message);
      expect(unknown.details).to.deep.equal(wrong.details);
    });
  });

  describe('GET /v1/me', () => {
    it('returns the authenticated user: id, email, role and created_at only', async () => {
      const { token, user, email } = await registerUser();
      const res = await request('GET', '/v1/me', { token });
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({ id: user.id, email: email.toLowerCase(), role: 'user', created_at: user.created_at });
    });

    it('answers 401 unauthorized without an Authorization header', async () => {
      expectError(await request('GET', '/v1/me'), 401, 'unauthorized');
    });

    it('answers 401 unauthorized for a non-Bearer Authorization header', async () => {
      const res = await request('GET', '/v1/me', { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
      expectError(res, 401, 'unauthorized');
    });
  });

  describe('token verification', () => {
    it('answers 401 token_expired for a correctly signed token past its exp', async () => {
      const { user } = await registerUser();
      const token = signWithRunSecret({ role: 'user', exp: Math.floor(Date.now() / 1000) - 60 }, { subject: user.id });
      expectError(await request('GET', '/v1/me', { token }), 401, 'token_expired');
    });

    it('answers 401 invalid_token for a token whose payload was tampered with', async () => {
      const { token, user } = await registerUser();
      const other = await registerUser();
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      expect(claims.sub).to.equal(user.id);
      const forged = Buffer.from(JSON.stringify({ ...claims, sub: other.user.id, role: 'admin' })).toString('base64url');
      expectError(await request('GET', '/v1/me', { token: `${header}.${forged}.${signature}` }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token for a token with a corrupted signature', async () => {
      const { token } = await registerUser();
      const last = token.at(-2) === 'A' ? 'B' : 'A';
      const corrupted = `${token.slice(0, -2)}${last}${token.at(-1)}`;
      expectError(await request('GET', '/v1/me', { token: corrupted }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token for a token signed with another secret', async () => {
      const { user } = await registerUser();
      const token = jwt.sign({ role: 'user' }, randomBytes(36).toString('base64url'), { subject: user.id, expiresIn: 300 });
      expectError(await request('GET', '/v1/me', { token }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token for an unsigned (alg: none) token', async () => {
      const { user } = await registerUser();
      const token = jwt.sign({ role: 'user' }, null as unknown as string, { algorithm: 'none', subject: user.id, expiresIn: 300 });
      expectError(await request('GET', '/v1/me', { token }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token for a validly signed token whose subject does not exist', async () => {
      const token = signWithRunSecret({ role: 'user' }, { subject: randomUUID(), expiresIn: 300 });
      expectError(await request('GET', '/v1/me', { token }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token once the token\'s user has been deleted', async () => {
      const { token, user } = await registerUser();
      expect((await request('GET', '/v1/me', { token })).status).to.equal(200);
      await withDb((db) => db.query('DELETE FROM users WHERE id = $1', [user.id]));
      expectError(await request('GET', '/v1/me', { token }), 401, 'invalid_token');
      expectError(await request('GET', '/v1/agents', { token }), 401, 'invalid_token');
    });

    it('answers 401 invalid_token for a token that is not a JWT at all', async () => {
      expectError(await request('GET', '/v1/me', { token: 'not-a-jwt' }), 401, 'invalid_token');
    });
  });

  describe('tokens from an external identity provider (JWKS)', () => {
    const kid = `test-key-${randomUUID()}`;
    let idpKey: KeyObject;
    let jwksServer: Server;
    let jwksUrl: string;
    let jwksRequests = 0;

    before(async () => {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      idpKey = privateKey;
      const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
      jwksServer = createServer((req, res) => {
        jwksRequests += 1;
        if (req.url !== '/.well-known/jwks.json') {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
      jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    });

    after(async () => {
      jwksServer.closeAllConnections();
      await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
    });

    const idpToken = (claims: Record<string, unknown>, key: KeyObject = idpKey, keyid = kid) =>
      jwt.sign(claims, key, { algorithm: 'RS256', keyid, subject: `idp|${randomUUID()}`, expiresIn: 300 });

    it('authenticates an RS256 token verified through the JWKS URL, provisioning its user by email', async () => {
      const web = await startExtraApi({ JWT_JWKS_URL: jwksUrl });
      try {
        const email = uniqueEmail('idp');
        const token = idpToken({ email: email.toUpperCase() });
        const first = await request('GET', '/v1/me', { base: web.url, token });
        expect(first.status, JSON.stringify(first.body)).to.equal(200);
        expect(first.body.email).to.equal(email.toLowerCase());
        expect(first.body.role).to.equal('user');
        expect(jwksRequests).to.be.at.least(1);

        // The same identity again maps to the same account, not a second one.
        const again = await request('GET', '/v1/me', { base: web.url, token: idpToken({ email }) });
        expect(again.status).to.equal(200);
        expect(again.body.id).to.equal(first.body.id);
        const { rows } = await withDb((db) => db.query('SELECT count(*)::int AS n FROM users WHERE email = $1', [email]));
        expect(rows[0].n).to.equal(1);
        // The provisioned user can use the API like any other.
        const agents = await request('GET', '/v1/agents', { base: web.url, token });
        expect(agents.status).to.equal(200);
      } finally {
        await web.close();
      }
    });

    it('maps an identity provider token with a verified email to the existing account with that email', async () => {
      const web = await startExtraApi({ JWT_JWKS_URL: jwksUrl });
      try {
        const local = await registerUser({ base: web.url });
        const res = await request('GET', '/v1/me', { base: web.url, token: idpToken({ email: local.email, email_verified: true }) });
        expect(res.status).to.equal(200);
        expect(res.body.id).to.equal(local.user.id);
        // Tokens issued by Cadre itself keep working next to the identity provider's.
        expect((await request('GET', '/v1/me', { base: web.url, token: local.token })).status).to.equal(200);
      } finally {
        await web.close();
      }
    });

    it('does not let an unverified identity provider email take over a password account (401)', async () => {
      const web = await startExtraApi({ JWT_JWKS_URL: jwksUrl });
      try {
        const local = await registerUser({ base: web.url });
        expectError(await request('GET', '/v1/me', { base: web.url, token: idpToken({ email: local.email }) }), 401, 'invalid_token');
        expectError(
          await request('GET', '/v1/me', { base: web.url, token: idpToken({ email: local.email, email_verified: false }) }),
          401,
          'invalid_token',
        );
        const fresh = uniqueEmail('unverified');
        expectError(await request('GET', '/v1/me', { base: web.url, token: idpToken({ email: fresh, email_verified: false }) }), 401, 'invalid_token');
      } finally {
        await web.close();
      }
    });

    it('rejects with 401 invalid_token an RS256 token signed by a key the JWKS does not publish', async () => {
      const web = await startExtraApi({ JWT_JWKS_URL: jwksUrl });
      try {
        const { privateKey: strangerKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const email = uniqueEmail('stranger');
        const sameKid = await request('GET', '/v1/me', { base: web.url, token: idpToken({ email }, strangerKey) });
        expectError(sameKid, 401, 'invalid_token');
        const unknownKid = await request('GET', '/v1/me', {
          base: web.url,
          token: idpToken({ email }, strangerKey, 'some-other-kid'),
        });
        expectError(unknownKid, 401, 'invalid_token');
        const { rows } = await withDb((db) => db.query('SELECT count(*)::int AS n FROM users WHERE email = $1', [email]));
        expect(rows[0].n, 'no user is provisioned from a rejected token').to.equal(0);
      } finally {
        await web.close();
      }
    });

    it('does not accept RS256 tokens on an instance without JWT_JWKS_URL', async () => {
      const res = await request('GET', '/v1/me', { token: idpToken({ email: uniqueEmail('nojwks') }) });
      expectError(res, 401, 'invalid_token');
    });
  });
});
