import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Message } from '../src/messages/message.entity.js';
import { detailPaths, expectError } from './support/expect-error.js';
import { registerUser, request, withDb, withOrm, type TestUser } from './support/harness.js';

/** Follows next_cursor from the first page to the last; returns every page. */
async function allPages(token: string, path: string, limit: number, param = 'cursor'): Promise<any[][]> {
  const pages: any[][] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const url: string = `${path}${sep}limit=${limit}${cursor ? `&${param}=${encodeURIComponent(cursor)}` : ''}`;
    const res = await request('GET', url, { token });
    expect(res.status, `${url}: ${JSON.stringify(res.body)}`).to.equal(200);
    expect(res.body).to.have.all.keys('data', 'next_cursor');
    pages.push(res.body.data);
    cursor = res.body.next_cursor;
    if (cursor !== null) expect(cursor).to.be.a('string').and.not.be.empty;
    expect(pages.length, 'pagination terminates').to.be.below(100);
  } while (cursor !== null);
  return pages;
}

async function createSessions(user: TestUser, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request('POST', '/v1/sessions', { token: user.token, body: { title: `session ${i}` } });
    expect(res.status).to.equal(201);
    ids.push(res.body.id);
  }
  return ids;
}

async function createAgents(user: TestUser, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request('POST', '/v1/agents', {
      token: user.token,
      body: { name: `agent-${i}`, system_prompt: 'You help.', model: 'gpt-test' },
    });
    expect(res.status).to.equal(201);
    ids.push(res.body.id);
  }
  return ids;
}

function expectListError(res: Awaited<ReturnType<typeof request>>, path: string) {
  expectError(res, 422, 'validation_failed');
  expect(detailPaths(res)).to.include(path);
}

describe('Pagination', () => {
  describe('GET /v1/sessions', () => {
    it('pages 250 sessions as 100, 100, 50, most recently active first, each exactly once', async function () {
      this.timeout(60_000);
      const user = await registerUser();
      const created = await createSessions(user, 250);
      const pages = await allPages(user.token, '/v1/sessions', 100);
      expect(pages.map((p) => p.length)).to.deep.equal([100, 100, 50]);
      const listed = pages.flat().map((s) => s.id);
      expect(new Set(listed).size).to.equal(250);
      // Nothing has messages yet, so activity order is creation order, newest first.
      expect(listed).to.deep.equal([...created].reverse());
      const activity = pages.flat().map((s) => s.created_at);
      expect(activity).to.deep.equal([...activity].sort().reverse());
    });

    it('defaults to 20 per page', async () => {
      const user = await registerUser();
      await createSessions(user, 21);
      const res = await request('GET', '/v1/sessions', { token: user.token });
      expect(res.body.data).to.have.length(20);
      expect(res.body.next_cursor).to.be.a('string');
    });

    it('answers next_cursor null when everything fits on one page', async () => {
      const user = await registerUser();
      await createSessions(user, 3);
      const res = await request('GET', '/v1/sessions?limit=3', { token: user.token });
      expect(res.body.data).to.have.length(3);
      expect(res.body.next_cursor).to.equal(null);
    });

    it('orders by last activity, so a session with newer activity comes first', async () => {
      const user = await registerUser();
      const [oldest, middle, newest] = await createSessions(user, 3);
      await withDb((db) =>
        db.query(`UPDATE chat_sessions SET last_activity_at = last_activity_at + interval '1 hour' WHERE id = $1`, [oldest]),
      );
      const res = await request('GET', '/v1/sessions', { token: user.token });
      expect(res.body.data.map((s: any) => s.id)).to.deep.equal([oldest, newest, middle]);
    });

    it('visits every session exactly once even when many share the same activity time', async () => {
      const user = await registerUser();
      const ids = await createSessions(user, 23);
      await withDb((db) =>
        db.query(`UPDATE chat_sessions SET last_activity_at = '2030-01-01T00:00:00.000Z' WHERE user_id = $1`, [user.user.id]),
      );
      const pages = await allPages(user.token, '/v1/sessions', 5);
      expect(pages.map((p) => p.length)).to.deep.equal([5, 5, 5, 5, 3]);
      expect(pages.flat().map((s) => s.id)).to.deep.equal([...ids].sort().reverse());
    });

    for (const limit of ['0', '101', '-1', 'ten', '2.5']) {
      it(`answers 422 validation_failed for limit=${limit}`, async () => {
        const { token } = await registerUser();
        expectListError(await request('GET', `/v1/sessions?limit=${limit}`, { token }), 'query.limit');
      });
    }

    it('accepts the limits at the edges, 1 and 100', async () => {
      const user = await registerUser();
      await createSessions(user, 2);
      expect((await request('GET', '/v1/sessions?limit=1', { token: user.token })).body.data).to.have.length(1);
      expect((await request('GET', '/v1/sessions?limit=100', { token: user.token })).body.data).to.have.length(2);
    });

    const garbage = [
      'garbage',
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from(JSON.stringify(['not a date', randomUUID()])).toString('base64url'),
      Buffer.from(JSON.stringify([new Date().toISOString(), 'not-a-uuid'])).toString('base64url'),
      Buffer.from('{"at":1}').toString('base64url'),
      // Valid JavaScript dates that PostgreSQL cannot store must not become a 500.
      Buffer.from(JSON.stringify(['-004800-01-01T00:00:00.000Z', randomUUID()])).toString('base64url'),
      Buffer.from(JSON.stringify(['+275760-09-13T00:00:00.000Z', randomUUID()])).toString('base64url'),
      'x'.repeat(201),
    ];
    for (const cursor of garbage) {
      it(`answers 422 validation_failed for the cursor ${JSON.stringify(cursor.slice(0, 40))}`, async () => {
        const { token } = await registerUser();
        const res = await request('GET', `/v1/sessions?cursor=${encodeURIComponent(cursor)}`, { token });
        expectListError(res, 'query.cursor');
      });
    }

    it('answers 422 for an unknown query parameter', async () => {
      const { token } = await registerUser();
      expectListError(await request('GET', '/v1/sessions?offset=10', { token }), 'query.offset');
    });
  });

  describe('GET /v1/agents', () => {
    it('pages 25 agents as 10, 10, 5, newest first, each exactly once', async () => {
      const user = await registerUser();
      const created = await createAgents(user, 25);
      const pages = await allPages(user.token, '/v1/agents', 10);
      expect(pages.map((p) => p.length)).to.deep.equal([10, 10, 5]);
      expect(pages.flat().map((a) => a.id)).to.deep.equal([...created].reverse());
    });

    it('answers 422 for limit 0, limit 101 and a garbage cursor', async () => {
      const { token } = await registerUser();
      expectListError(await request('GET', '/v1/agents?limit=0', { token }), 'query.limit');
      expectListError(await request('GET', '/v1/agents?limit=101', { token }), 'query.limit');
      expectListError(await request('GET', '/v1/agents?cursor=garbage', { token }), 'query.cursor');
    });
  });

  describe('GET /v1/sessions/:id/messages', () => {
    /** Inserts `count` messages one second apart (posting messages is not part of the core). */
    async function seedMessages(sessionId: string, count: number, start = Date.parse('2030-01-01T00:00:00.000Z')) {
      return withOrm(async (orm) => {
        const em = orm.em.fork();
        const rows = Array.from({ length: count }, (_, i) =>
          em.create(Message, {
            sessionId,
            role: i % 2 === 0 ? 'user' : 'assistant',
            content: `message ${i}`,
            createdAt: new Date(start + i * 1000),
          }),
        );
        await em.flush();
        return rows.map((m) => m.id);
      });
    }

    async function newSession(user: TestUser): Promise<string> {
      const res = await request('POST', '/v1/sessions', { token: user.token, body: { title: 'chat' } });
      return res.body.id;
    }

    it('lists messages oldest first with the message shape', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const ids = await seedMessages(sessionId, 3);
      const res = await request('GET', `/v1/sessions/${sessionId}/messages`, { token: user.token });
      expect(res.status).to.equal(200);
      expect(res.body.next_cursor).to.equal(null);
      expect(res.body.data.map((m: any) => m.id)).to.deep.equal(ids);
      expect(res.body.data[0]).to.deep.equal({
        id: ids[0],
        session_id: sessionId,
        role: 'user',
        content: 'message 0',
        agent_id: null,
        task_id: null,
        created_at: '2030-01-01T00:00:00.000Z',
      });
    });

    it('answers an empty page for a session without messages', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const res = await request('GET', `/v1/sessions/${sessionId}/messages`, { token: user.token });
      expect(res.body).to.deep.equal({ data: [], next_cursor: null });
    });

    it('starts with the latest page and pages back in time with `before`, each message once', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const ids = await seedMessages(sessionId, 7);
      const pages = await allPages(user.token, `/v1/sessions/${sessionId}/messages`, 3, 'before');
      expect(pages.map((p) => p.map((m: any) => m.id))).to.deep.equal([ids.slice(4, 7), ids.slice(1, 4), ids.slice(0, 1)]);
    });

    it('accepts a message id as `before` and returns the messages older than it', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const ids = await seedMessages(sessionId, 6);
      const res = await request('GET', `/v1/sessions/${sessionId}/messages?before=${ids[4]}&limit=2`, { token: user.token });
      expect(res.status).to.equal(200);
      expect(res.body.data.map((m: any) => m.id)).to.deep.equal([ids[2], ids[3]]);
      expect(res.body.next_cursor).to.be.a('string');
    });

    it('orders messages that share a timestamp by id, across page boundaries', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const ids = await withOrm(async (orm) => {
        const em = orm.em.fork();
        const at = new Date('2030-06-01T12:00:00.000Z');
        const rows = Array.from({ length: 9 }, (_, i) => em.create(Message, { sessionId, role: 'user', content: `same ${i}`, createdAt: at }));
        await em.flush();
        return rows.map((m) => m.id);
      });
      const pages = await allPages(user.token, `/v1/sessions/${sessionId}/messages`, 4, 'before');
      const seen = pages.reverse().flat().map((m: any) => m.id);
      expect(seen).to.deep.equal([...ids].sort());
    });

    it('only lists the messages of that session', async () => {
      const user = await registerUser();
      const [a, b] = [await newSession(user), await newSession(user)];
      const idsA = await seedMessages(a, 2);
      await seedMessages(b, 3);
      const res = await request('GET', `/v1/sessions/${a}/messages`, { token: user.token });
      expect(res.body.data.map((m: any) => m.id)).to.deep.equal(idsA);
    });

    it('answers 422 for limit 0, limit 101 and a garbage `before`', async () => {
      const user = await registerUser();
      const sessionId = await newSession(user);
      const base = `/v1/sessions/${sessionId}/messages`;
      expectListError(await request('GET', `${base}?limit=0`, { token: user.token }), 'query.limit');
      expectListError(await request('GET', `${base}?limit=101`, { token: user.token }), 'query.limit');
      expectListError(await request('GET', `${base}?before=garbage`, { token: user.token }), 'query.before');
      const outOfRange = Buffer.from(JSON.stringify(['-004800-01-01T00:00:00.000Z', randomUUID()])).toString('base64url');
      expectListError(await request('GET', `${base}?before=${outOfRange}`, { token: user.token }), 'query.before');
    });
  });
});
