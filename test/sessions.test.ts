import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Message } from '../src/messages/message.entity.js';
import { Task } from '../src/tasks/task.entity.js';
import { expectError } from './support/expect-error.js';
import { registerUser, request, withDb, withOrm, type TestUser } from './support/harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SESSION_KEYS = ['id', 'title', 'created_at', 'updated_at', 'last_message_at', 'message_count'];

async function createSession(user: TestUser, body: unknown = { title: 'Planning' }) {
  const res = await request('POST', '/v1/sessions', { token: user.token, body });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body;
}

/** A message and a task in the session, written the way the execution pipeline will write them. */
async function seedConversation(userId: string, sessionId: string) {
  await withOrm(async (orm) => {
    const em = orm.em.fork();
    const task = em.create(Task, { userId, sessionId, input: { content: 'hi', message_id: randomUUID() } });
    em.create(Message, { sessionId, role: 'user', content: 'hi' });
    em.create(Message, { sessionId, role: 'assistant', content: 'hello', taskId: task.id });
    await em.flush();
  });
}

async function countRows(sessionId: string) {
  return withDb(async (db) => {
    const { rows } = await db.query(
      `SELECT (SELECT count(*)::int FROM messages WHERE session_id = $1) AS messages,
              (SELECT count(*)::int FROM tasks WHERE session_id = $1) AS tasks,
              (SELECT count(*)::int FROM chat_sessions WHERE id = $1) AS sessions`,
      [sessionId],
    );
    return rows[0] as { messages: number; tasks: number; sessions: number };
  });
}

describe('Sessions', () => {
  describe('POST /v1/sessions', () => {
    it('creates a session with a title and no messages yet', async () => {
      const user = await registerUser();
      const res = await request('POST', '/v1/sessions', { token: user.token, body: { title: 'Planning' } });
      expect(res.status).to.equal(201);
      expect(res.body).to.have.all.keys(...SESSION_KEYS);
      expect(res.body.id).to.match(UUID);
      expect(res.body).to.include({ title: 'Planning', last_message_at: null, message_count: 0 });
      expect(Date.parse(res.body.created_at)).to.be.closeTo(Date.now(), 60_000);
      expect(res.body.updated_at).to.equal(res.body.created_at);
    });

    it('creates an untitled session from an empty body or no body at all', async () => {
      const user = await registerUser();
      expect((await createSession(user, {})).title).to.equal(null);
      const bare = await request('POST', '/v1/sessions', { token: user.token });
      expect(bare.status).to.equal(201);
      expect(bare.body.title).to.equal(null);
    });
  });

  describe('GET /v1/sessions/:id', () => {
    it('returns the session as created', async () => {
      const user = await registerUser();
      const session = await createSession(user);
      const res = await request('GET', `/v1/sessions/${session.id}`, { token: user.token });
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal(session);
    });

    it('answers 404 not_found for a session that does not exist', async () => {
      const user = await registerUser();
      expectError(await request('GET', `/v1/sessions/${randomUUID()}`, { token: user.token }), 404, 'not_found');
    });
  });

  describe('PATCH /v1/sessions/:id', () => {
    it('renames the session and moves updated_at forward', async () => {
      const user = await registerUser();
      const session = await createSession(user);
      await new Promise((r) => setTimeout(r, 5));
      const res = await request('PATCH', `/v1/sessions/${session.id}`, { token: user.token, body: { title: 'Launch plan' } });
      expect(res.status).to.equal(200);
      expect(res.body).to.include({ id: session.id, title: 'Launch plan', created_at: session.created_at });
      expect(Date.parse(res.body.updated_at)).to.be.greaterThan(Date.parse(session.updated_at));
      const fetched = await request('GET', `/v1/sessions/${session.id}`, { token: user.token });
      expect(fetched.body).to.deep.equal(res.body);
    });

    it('clears the title with null', async () => {
      const user = await registerUser();
      const session = await createSession(user);
      const res = await request('PATCH', `/v1/sessions/${session.id}`, { token: user.token, body: { title: null } });
      expect(res.status).to.equal(200);
      expect(res.body.title).to.equal(null);
    });

    it('answers 404 not_found for a session that does not exist', async () => {
      const user = await registerUser();
      const res = await request('PATCH', `/v1/sessions/${randomUUID()}`, { token: user.token, body: { title: 'x' } });
      expectError(res, 404, 'not_found');
    });
  });

  describe('DELETE /v1/sessions/:id', () => {
    it('answers 204 with no body, after which the session is 404 and gone from the list', async () => {
      const user = await registerUser();
      const keep = await createSession(user, { title: 'keep' });
      const doomed = await createSession(user, { title: 'doomed' });
      const res = await request('DELETE', `/v1/sessions/${doomed.id}`, { token: user.token });
      expect(res.status).to.equal(204);
      expect(res.body).to.equal('');
      expectError(await request('GET', `/v1/sessions/${doomed.id}`, { token: user.token }), 404, 'not_found');
      expectError(await request('GET', `/v1/sessions/${doomed.id}/messages`, { token: user.token }), 404, 'not_found');
      expectError(await request('DELETE', `/v1/sessions/${doomed.id}`, { token: user.token }), 404, 'not_found');
      const list = await request('GET', '/v1/sessions', { token: user.token });
      expect(list.body.data.map((s: any) => s.id)).to.deep.equal([keep.id]);
    });

    it('deletes the session\'s messages and tasks from the database, and only those', async () => {
      const user = await registerUser();
      const doomed = await createSession(user, { title: 'doomed' });
      const other = await createSession(user, { title: 'other' });
      await seedConversation(user.user.id, doomed.id);
      await seedConversation(user.user.id, other.id);
      expect(await countRows(doomed.id)).to.deep.equal({ messages: 2, tasks: 1, sessions: 1 });

      expect((await request('DELETE', `/v1/sessions/${doomed.id}`, { token: user.token })).status).to.equal(204);

      expect(await countRows(doomed.id)).to.deep.equal({ messages: 0, tasks: 0, sessions: 0 });
      expect(await countRows(other.id)).to.deep.equal({ messages: 2, tasks: 1, sessions: 1 });
    });
  });

  describe('GET /v1/sessions', () => {
    it('lists the user\'s sessions with the session shape', async () => {
      const user = await registerUser();
      const a = await createSession(user, { title: 'a' });
      const b = await createSession(user, { title: 'b' });
      const res = await request('GET', '/v1/sessions', { token: user.token });
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({ data: [b, a], next_cursor: null });
    });
  });
});
