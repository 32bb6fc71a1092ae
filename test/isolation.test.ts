import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { expectError } from './support/expect-error.js';
import { registerUser, request, withDb, type TestUser } from './support/harness.js';

interface Owned {
  owner: TestUser;
  intruder: TestUser;
  agentId: string;
  sessionId: string;
}

/** Two users; the first owns an agent and a session with one message. */
async function ownedResources(): Promise<Owned> {
  const [owner, intruder] = await Promise.all([registerUser(), registerUser()]);
  const agent = await request('POST', '/v1/agents', {
    token: owner.token,
    body: { name: 'private-agent', system_prompt: 'Secret instructions.', model: 'gpt-test' },
  });
  const session = await request('POST', '/v1/sessions', { token: owner.token, body: { title: 'private session' } });
  expect(agent.status).to.equal(201);
  expect(session.status).to.equal(201);
  await withDb((db) =>
    db.query(`INSERT INTO messages (id, session_id, role, content, created_at) VALUES ($1, $2, 'user', 'private words', now())`, [
      randomUUID(),
      session.body.id,
    ]),
  );
  return { owner, intruder, agentId: agent.body.id, sessionId: session.body.id };
}

describe("Isolation between users", () => {
  describe("another user's agent", () => {
    it('is 404 not_found on GET, PATCH and DELETE, never 403', async () => {
      const { intruder, agentId } = await ownedResources();
      expectError(await request('GET', `/v1/agents/${agentId}`, { token: intruder.token }), 404, 'not_found');
      expectError(await request('PATCH', `/v1/agents/${agentId}`, { token: intruder.token, body: { name: 'stolen' } }), 404, 'not_found');
      expectError(await request('DELETE', `/v1/agents/${agentId}`, { token: intruder.token }), 404, 'not_found');
    });

    it('answers exactly like an agent id that does not exist', async () => {
      const { intruder, agentId } = await ownedResources();
      const theirs = await request('GET', `/v1/agents/${agentId}`, { token: intruder.token });
      const nobodys = await request('GET', `/v1/agents/${randomUUID()}`, { token: intruder.token });
      expect(theirs.status).to.equal(nobodys.status);
      expect(theirs.body.error.code).to.equal(nobodys.body.error.code);
      expect(theirs.body.error.message).to.equal(nobodys.body.error.message);
    });

    it('is left unchanged by the failed PATCH and DELETE', async () => {
      const { owner, intruder, agentId } = await ownedResources();
      await request('PATCH', `/v1/agents/${agentId}`, { token: intruder.token, body: { name: 'stolen' } });
      await request('DELETE', `/v1/agents/${agentId}`, { token: intruder.token });
      const res = await request('GET', `/v1/agents/${agentId}`, { token: owner.token });
      expect(res.status).to.equal(200);
      expect(res.body.name).to.equal('private-agent');
      expect(res.body.version).to.equal(1);
    });

    it('never appears in the other user\'s list', async () => {
      const { owner, intruder, agentId } = await ownedResources();
      const mine = await request('GET', '/v1/agents', { token: owner.token });
      expect(mine.body.data.map((a: any) => a.id)).to.deep.equal([agentId]);
      const theirs = await request('GET', '/v1/agents', { token: intruder.token });
      expect(theirs.status).to.equal(200);
      expect(theirs.body).to.deep.equal({ data: [], next_cursor: null });
    });
  });

  describe("another user's session", () => {
    it('is 404 not_found on GET, PATCH, DELETE and GET messages', async () => {
      const { intruder, sessionId } = await ownedResources();
      const token = intruder.token;
      expectError(await request('GET', `/v1/sessions/${sessionId}`, { token }), 404, 'not_found');
      expectError(await request('PATCH', `/v1/sessions/${sessionId}`, { token, body: { title: 'mine now' } }), 404, 'not_found');
      expectError(await request('DELETE', `/v1/sessions/${sessionId}`, { token }), 404, 'not_found');
      expectError(await request('GET', `/v1/sessions/${sessionId}/messages`, { token }), 404, 'not_found');
    });

    it('keeps its title and messages after the failed PATCH and DELETE', async () => {
      const { owner, intruder, sessionId } = await ownedResources();
      await request('PATCH', `/v1/sessions/${sessionId}`, { token: intruder.token, body: { title: 'mine now' } });
      await request('DELETE', `/v1/sessions/${sessionId}`, { token: intruder.token });
      const session = await request('GET', `/v1/sessions/${sessionId}`, { token: owner.token });
      expect(session.body.title).to.equal('private session');
      const messages = await request('GET', `/v1/sessions/${sessionId}/messages`, { token: owner.token });
      expect(messages.body.data.map((m: any) => m.content)).to.deep.equal(['private words']);
    });

    it('never appears in the other user\'s list', async () => {
      const { owner, intruder, sessionId } = await ownedResources();
      const mine = await request('GET', '/v1/sessions', { token: owner.token });
      expect(mine.body.data.map((s: any) => s.id)).to.deep.equal([sessionId]);
      const theirs = await request('GET', '/v1/sessions', { token: intruder.token });
      expect(theirs.body).to.deep.equal({ data: [], next_cursor: null });
    });

    it("cannot be reached with a message id of that session as the other user's `before` cursor", async () => {
      const { owner, intruder, sessionId } = await ownedResources();
      const messageId = (await request('GET', `/v1/sessions/${sessionId}/messages`, { token: owner.token })).body.data[0].id;
      const ownSession = await request('POST', '/v1/sessions', { token: intruder.token, body: {} });
      const res = await request('GET', `/v1/sessions/${ownSession.body.id}/messages?before=${messageId}`, { token: intruder.token });
      expectError(res, 404, 'not_found');
      expect(JSON.stringify(res.body)).to.not.contain('private words');
    });
  });

  describe('malformed ids', () => {
    const malformed = ['not-a-uuid', '123', `${randomUUID()}x`, "1' OR '1'='1"];

    for (const id of malformed) {
      it(`answers 404 not_found for agent and session id ${JSON.stringify(id)}`, async () => {
        const { token } = await registerUser();
        const path = encodeURIComponent(id);
        expectError(await request('GET', `/v1/agents/${path}`, { token }), 404, 'not_found');
        expectError(await request('PATCH', `/v1/agents/${path}`, { token, body: { name: 'x' } }), 404, 'not_found');
        expectError(await request('DELETE', `/v1/agents/${path}`, { token }), 404, 'not_found');
        expectError(await request('GET', `/v1/sessions/${path}`, { token }), 404, 'not_found');
        expectError(await request('PATCH', `/v1/sessions/${path}`, { token, body: { title: 'x' } }), 404, 'not_found');
        expectError(await request('DELETE', `/v1/sessions/${path}`, { token }), 404, 'not_found');
        expectError(await request('GET', `/v1/sessions/${path}/messages`, { token }), 404, 'not_found');
      });
    }
  });

  describe('authentication is required', () => {
    const routes: Array<[string, string]> = [
      ['GET', '/v1/agents'],
      ['POST', '/v1/agents'],
      ['GET', `/v1/agents/${randomUUID()}`],
      ['PATCH', `/v1/agents/${randomUUID()}`],
      ['DELETE', `/v1/agents/${randomUUID()}`],
      ['GET', '/v1/sessions'],
      ['POST', '/v1/sessions'],
      ['GET', `/v1/sessions/${randomUUID()}`],
      ['PATCH', `/v1/sessions/${randomUUID()}`],
      ['DELETE', `/v1/sessions/${randomUUID()}`],
      ['GET', `/v1/sessions/${randomUUID()}/messages`],
    ];
    it('answers 401 unauthorized on every resource route without a token', async () => {
      for (const [method, path] of routes) {
        const res = await request(method, path, method === 'POST' || method === 'PATCH' ? { body: { title: 'x' } } : {});
        expect(res.status, `${method} ${path}`).to.equal(401);
        expectError(res, 401, 'unauthorized');
      }
    });
  });
});
