import { expect } from 'chai';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { agentQueueName, bullPrefix } from '../src/jobs/queue-names.js';
import { expectError } from './support/expect-error.js';
import { harness, redisUrl, registerUser, request, type TestUser } from './support/harness.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const AGENT_KEYS = [
  'id',
  'name',
  'description',
  'system_prompt',
  'model',
  'tools',
  'capabilities',
  'concurrency_limit',
  'params',
  'status',
  'version',
  'created_at',
  'updated_at',
];

const minimal = (name = 'helper') => ({ name, system_prompt: 'You are helpful.', model: 'gpt-test' });

async function createAgent(user: TestUser, body: Record<string, unknown> = minimal()) {
  const res = await request('POST', '/v1/agents', { token: user.token, body });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body;
}

/** The BullMQ global concurrency of the agent's queue, as every worker process sees it. */
async function queueConcurrency(agentId: string): Promise<number | null> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(agentQueueName(agentId), { connection, prefix: bullPrefix(harness().redisPrefix) });
  try {
    return await queue.getGlobalConcurrency();
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

describe('Agents', () => {
  describe('POST /v1/agents', () => {
    it('creates an agent with defaults: concurrency_limit 3, version 1, empty tools, capabilities and params', async () => {
      const user = await registerUser();
      const res = await request('POST', '/v1/agents', { token: user.token, body: minimal() });
      expect(res.status).to.equal(201);
      expect(res.body).to.have.all.keys(...AGENT_KEYS);
      expect(res.body.id).to.match(UUID);
      expect(res.body).to.include({
        name: 'helper',
        description: '',
        system_prompt: 'You are helpful.',
        model: 'gpt-test',
        concurrency_limit: 3,
        status: 'active',
        version: 1,
      });
      expect(res.body.tools).to.deep.equal([]);
      expect(res.body.capabilities).to.deep.equal([]);
      expect(res.body.params).to.deep.equal({});
      expect(Date.parse(res.body.created_at)).to.be.closeTo(Date.now(), 60_000);
      expect(res.body.updated_at).to.equal(res.body.created_at);
    });

    it('stores every optional field as given', async () => {
      const user = await registerUser();
      const body = {
        ...minimal('researcher'),
        description: 'Finds things out',
        tools: ['web_search', 'calculator'],
        capabilities: ['research'],
        concurrency_limit: 7,
        params: { temperature: 0.2, top_p: 0.9, max_tokens: 512 },
      };
      const created = await createAgent(user, body);
      expect(created).to.deep.include(body);
      const fetched = await request('GET', `/v1/agents/${created.id}`, { token: user.token });
      expect(fetched.status).to.equal(200);
      expect(fetched.body).to.deep.equal(created);
    });

    it('sets the agent queue\'s global concurrency to concurrency_limit', async () => {
      const user = await registerUser();
      const agent = await createAgent(user, { ...minimal(), concurrency_limit: 4 });
      expect(await queueConcurrency(agent.id)).to.equal(4);
    });

    it('answers 409 agent_name_taken when the user already has an agent with that name', async () => {
      const user = await registerUser();
      await createAgent(user, minimal('twin'));
      const res = await request('POST', '/v1/agents', { token: user.token, body: { ...minimal('twin'), model: 'other' } });
      expectError(res, 409, 'agent_name_taken');
      const list = await request('GET', '/v1/agents', { token: user.token });
      expect(list.body.data).to.have.length(1);
    });

    it('lets two users each have an agent with the same name', async () => {
      const [alice, bob] = await Promise.all([registerUser(), registerUser()]);
      const a = await createAgent(alice, minimal('shared-name'));
      const b = await createAgent(bob, minimal('shared-name'));
      expect(a.id).to.not.equal(b.id);
    });
  });

  describe('PATCH /v1/agents/:id', () => {
    it('changes only the given fields and bumps version by one each time', async () => {
      const user = await registerUser();
      const agent = await createAgent(user, { ...minimal(), tools: ['calculator'] });
      const first = await request('PATCH', `/v1/agents/${agent.id}`, {
        token: user.token,
        body: { system_prompt: 'Be terse.', params: { temperature: 0 } },
      });
      expect(first.status).to.equal(200);
      expect(first.body).to.deep.include({
        id: agent.id,
        name: 'helper',
        system_prompt: 'Be terse.',
        params: { temperature: 0 },
        tools: ['calculator'],
        version: 2,
        created_at: agent.created_at,
      });
      expect(Date.parse(first.body.updated_at)).to.be.at.least(Date.parse(agent.updated_at));
      const second = await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { description: 'now described' } });
      expect(second.body.version).to.equal(3);
      expect(second.body.system_prompt).to.equal('Be terse.');
      const fetched = await request('GET', `/v1/agents/${agent.id}`, { token: user.token });
      expect(fetched.body).to.deep.equal(second.body);
    });

    it('updates the queue concurrency when concurrency_limit changes', async () => {
      const user = await registerUser();
      const agent = await createAgent(user);
      const res = await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { concurrency_limit: 9 } });
      expect(res.body.concurrency_limit).to.equal(9);
      expect(await queueConcurrency(agent.id)).to.equal(9);
    });

    it('answers 409 agent_name_taken when renaming onto another agent\'s name, and changes nothing', async () => {
      const user = await registerUser();
      await createAgent(user, minimal('first'));
      const second = await createAgent(user, minimal('second'));
      const res = await request('PATCH', `/v1/agents/${second.id}`, { token: user.token, body: { name: 'first', model: 'changed' } });
      expectError(res, 409, 'agent_name_taken');
      const fetched = await request('GET', `/v1/agents/${second.id}`, { token: user.token });
      expect(fetched.body).to.include({ name: 'second', model: 'gpt-test', version: 1 });
    });

    it('allows renaming an agent to its own name and to a name another user has', async () => {
      const [user, other] = await Promise.all([registerUser(), registerUser()]);
      await createAgent(other, minimal('popular'));
      const agent = await createAgent(user, minimal('mine'));
      expect((await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { name: 'mine' } })).status).to.equal(200);
      const renamed = await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { name: 'popular' } });
      expect(renamed.status).to.equal(200);
      expect(renamed.body.name).to.equal('popular');
    });

    it('answers 404 not_found for an agent that does not exist', async () => {
      const user = await registerUser();
      const res = await request('PATCH', '/v1/agents/00000000-0000-7000-8000-000000000000', { token: user.token, body: { name: 'x' } });
      expectError(res, 404, 'not_found');
    });
  });

  describe('DELETE /v1/agents/:id', () => {
    it('answers 204 with no body, after which the agent is 404 everywhere', async () => {
      const user = await registerUser();
      const agent = await createAgent(user);
      const res = await request('DELETE', `/v1/agents/${agent.id}`, { token: user.token });
      expect(res.status).to.equal(204);
      expect(res.body).to.equal('');
      expectError(await request('GET', `/v1/agents/${agent.id}`, { token: user.token }), 404, 'not_found');
      expectError(await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { name: 'x' } }), 404, 'not_found');
      expectError(await request('DELETE', `/v1/agents/${agent.id}`, { token: user.token }), 404, 'not_found');
      const list = await request('GET', '/v1/agents', { token: user.token });
      expect(list.body.data).to.deep.equal([]);
    });

    it('frees the name for a new agent and removes the agent\'s queue settings', async () => {
      const user = await registerUser();
      const agent = await createAgent(user, { ...minimal('reused'), concurrency_limit: 5 });
      expect(await queueConcurrency(agent.id)).to.equal(5);
      expect((await request('DELETE', `/v1/agents/${agent.id}`, { token: user.token })).status).to.equal(204);
      expect(await queueConcurrency(agent.id)).to.equal(null);
      const again = await createAgent(user, minimal('reused'));
      expect(again.id).to.not.equal(agent.id);
      expect(again.version).to.equal(1);
    });
  });
});
