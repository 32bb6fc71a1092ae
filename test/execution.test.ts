import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { agentQueueName, bullPrefix } from '../src/jobs/queue-names.js';
import { assertHandlersComplete } from '../workers/job-handlers.js';
import { startFakeLlm, type FakeLlm, type FakeModelBehaviour } from './support/fake-llm.js';
import { harness, redisUrl, registerUser, request, startExtraApi, withDb, withOrm, type TestUser } from './support/harness.js';
import { openEvents, type StreamedEvent } from './support/events-client.js';
import { expectError } from './support/expect-error.js';
import { startWorkerProcess, stopAllWorkers, type WorkerProcess } from './support/workers.js';
import { setRole } from '../src/auth/auth.service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('direct execution (API + 2 worker processes + OpenAI-compatible test server)', function () {
  this.timeout(60_000);
  let fake: FakeLlm;
  let workers: WorkerProcess[] = [];
  let redis: Redis;

  const workerEnv = () => ({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-test-key' });

  before(async function () {
    this.timeout(90_000);
    fake = await startFakeLlm();
    redis = new Redis(redisUrl);
    workers = await Promise.all([startWorkerProcess(workerEnv()), startWorkerProcess(workerEnv())]);
  });

  after(async () => {
    await stopAllWorkers();
    redis?.disconnect();
    await fake?.close();
  });

  /** Keeps two live workers for the next test after one was killed or stopped. */
  async function replaceDeadWorkers() {
    const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    while (alive.length < 2) alive.push(await startWorkerProcess(workerEnv()));
    workers = alive;
  }

  interface Setup {
    user: TestUser;
    agent: any;
    model: string;
  }

  async function setup(behaviour: FakeModelBehaviour = {}, agentFields: Record<string, unknown> = {}): Promise<Setup> {
    const user = await registerUser();
    const model = `test-${randomUUID().slice(0, 8)}`;
    fake.script(model, behaviour);
    const res = await request('POST', '/v1/agents', {
      token: user.token,
      body: { name: `agent-${model}`, system_prompt: 'You are a test agent.', model, ...agentFields },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return { user, agent: res.body, model };
  }

  async function newSession(user: TestUser): Promise<string> {
    const res = await request('POST', '/v1/sessions', { token: user.token, body: { title: 'test' } });
    expect(res.status).to.equal(201);
    return res.body.id;
  }

  async function post(user: TestUser, sessionId: string, agentId: string, content: string, extra: Record<string, unknown> = {}) {
    const res = await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, body: { content, agent_id: agentId, ...extra } });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body as { message: any; task: any };
  }

  async function waitForTask(user: TestUser, taskId: string, statuses = ['completed', 'failed', 'cancelled'], timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await request('GET', `/v1/tasks/${taskId}`, { token: user.token });
      expect(res.status).to.equal(200);
      if (statuses.includes(res.body.status)) return res.body;
      if (Date.now() > deadline) throw new Error(`task ${taskId} still ${res.body.status} after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  async function messagesOf(user: TestUser, sessionId: string) {
    const res = await request('GET', `/v1/sessions/${sessionId}/messages?limit=100`, { token: user.token });
    expect(res.status).to.equal(200);
    return res.body.data as any[];
  }

  function queueOf(agentId: string) {
    return new Queue(agentQueueName(agentId), { connection: redis, prefix: bullPrefix(harness().redisPrefix) });
  }

  it('streams a reply as message.delta events, then stores the answer, usage and every event', async () => {
    const reply = 'The quick brown fox jumps over the lazy dog while the test watches every token';
    const { user, agent, model } = await setup({ reply, chunks: 8, chunkDelayMs: 25 });
    const sessionId = await newSession(user);
    const sse = await openEvents(sessionId, { format: 'sse', token: user.token });
    const { message, task } = await post(user, sessionId, agent.id, 'Tell me about foxes');
    expect(task.status).to.equal('queued');
    expect(message).to.include({ role: 'user', content: 'Tell me about foxes', agent_id: agent.id, task_id: task.id });

    const completed = await sse.waitFor((e) => e.type === 'task.completed' && e.task_id === task.id);
    sse.close();
    const types = sse.events.map((e) => e.type);
    expect(types.slice(0, 3)).to.deep.equal(['message.created', 'task.queued', 'task.started']);
    expect(types.slice(-2)).to.deep.equal(['message.created', 'task.completed']);
    const deltas = sse.events.filter((e) => e.type === 'message.delta');
    expect(deltas.length, 'several deltas, not one blob').to.be.greaterThan(1);
    expect(deltas.map((e) => e.data.text).join('')).to.equal(reply);
    const ids = sse.events.map((e) => e.id);
    ids.forEach((id, i) => i > 0 && expect(id).to.be.greaterThan(ids[i - 1]!));
    expect(sse.sseIds).to.deep.equal(ids);
    for (const e of sse.events) expect(e).to.include({ session_id: sessionId, task_id: task.id, agent_id: agent.id });

    const stored = await waitForTask(user, task.id);
    expect(stored.status).to.equal('completed');
    expect(stored.result).to.equal(reply);
    expect(stored.attempts).to.equal(1);
    expect(stored.usage.prompt_tokens).to.be.greaterThan(0);
    expect(stored.usage.completion_tokens).to.be.greaterThan(0);
    expect(stored.started_at).to.be.a('string');
    expect(stored.finished_at).to.be.a('string');
    expect(completed.data.task.status).to.equal('completed');

    const messages = await messagesOf(user, sessionId);
    expect(messages.map((m) => [m.role, m.content])).to.deep.equal([
      ['user', 'Tell me about foxes'],
      ['assistant', reply],
    ]);
    expect(messages[1]).to.include({ agent_id: agent.id, task_id: task.id, id: completed.data.message_id });
    const session = await request('GET', `/v1/sessions/${sessionId}`, { token: user.token });
    expect(session.body.message_count).to.equal(2);

    const [sent] = fake.requests(model);
    expect(sent!.body.stream).to.equal(true);
    expect(sent!.body.messages[0]).to.deep.equal({ role: 'system', content: 'You are a test agent.' });
    expect(sent!.headers.authorization).to.equal('Bearer sk-test-key');
  });

  for (const [limit, count] of [
    [2, 8],
    [3, 12],
  ] as const) {
  it(`holds concurrency_limit ${limit} across worker processes with ${count} tasks, and another agent is not slowed by it`, async () => {
    const slow = await setup({ firstChunkDelayMs: 400, chunks: 2 }, { concurrency_limit: limit });
    const quick = await setup({ chunks: 2 }, { concurrency_limit: 3 });
    const sessions = await Promise.all(Array.from({ length: count }, () => newSession(slow.user)));
    const tasks = await Promise.all(sessions.map((s, i) => post(slow.user, s, slow.agent.id, `job ${i}`)));
    await fake.waitForRequests(slow.model, 1);

    const quickSession = await newSession(quick.user);
    const quickTask = (await post(quick.user, quickSession, quick.agent.id, 'are you free?')).task;
    const quickDone = await waitForTask(quick.user, quickTask.id);
    const slowStillRunning = (await Promise.all(tasks.map((t) => request('GET', `/v1/tasks/${t.task.id}`, { token: slow.user.token })))).filter(
      (r) => r.body.status !== 'completed',
    ).length;
    expect(quickDone.status).to.equal('completed');
    expect(slowStillRunning, 'the quick agent finished while the slow agent still had work').to.be.greaterThan(0);

    const done = await Promise.all(tasks.map((t) => waitForTask(slow.user, t.task.id)));
    expect(done.map((t) => t.status)).to.deep.equal(Array(count).fill('completed'));
    const stats = fake.stats(slow.model);
    expect(stats.requests).to.equal(count);
    // Each test worker takes at most 2 jobs of an agent, so 3 needs both processes, and
    // without the global limit the two would reach 4.
    expect(stats.maxInFlight, 'never more than the limit at the provider').to.equal(limit);
    const processedBy = new Set<string>();
    const queue = queueOf(slow.agent.id);
    for (const t of tasks) {
      const job = await queue.getJob(t.task.id);
      if (job?.processedBy) processedBy.add(job.processedBy);
    }
    await queue.close();
    if (limit > 2) expect(processedBy.size, 'both worker processes took jobs').to.equal(2);
  });
  }

  it('runs one session\'s messages strictly in order, each seeing the previous answer', async () => {
    const { user, agent, model } = await setup({ mode: 'transcript', firstChunkDelayMs: 30 });
    const sessionId = await newSession(user);
    const posted = [];
    for (const content of ['first question', 'second question', 'third question']) posted.push(await post(user, sessionId, agent.id, content));
    expect(posted.map((p) => p.task.status)).to.deep.equal(['queued', 'queued', 'queued']);
    const done = await Promise.all(posted.map((p) => waitForTask(user, p.task.id)));
    expect(done.map((t) => t.status)).to.deep.equal(['completed', 'completed', 'completed']);
    for (let i = 1; i < done.length; i++) {
      expect(Date.parse(done[i].started_at)).to.be.at.least(Date.parse(done[i - 1].finished_at));
    }
    const prompts = fake.requests(model).map((r) => r.body.messages.map((m: any) => `${m.role}: ${m.content}`));
    expect(prompts).to.have.length(3);
    expect(prompts[0]!.at(-1)).to.equal('user: first question');
    expect(prompts[1]).to.include(`assistant: ${done[0].result}`);
    expect(prompts[1]!.at(-1)).to.equal('user: second question');
    expect(prompts[2]).to.include(`assistant: ${done[1].result}`);
    expect(prompts[2]!.at(-1)).to.equal('user: third question');
    const messages = await messagesOf(user, sessionId);
    expect(messages.filter((m) => m.role === 'assistant').map((m) => m.task_id)).to.deep.equal(posted.map((p) => p.task.id));
  });

  for (const format of ['sse', 'ndjson'] as const) {
    it(`lets a ${format} client that disconnects mid-stream resume with Last-Event-ID, with no gap and no duplicate`, async () => {
      const { user, agent } = await setup({ chunks: 24, chunkDelayMs: 25 });
      const sessionId = await newSession(user);
      const reference = await openEvents(sessionId, { format, token: user.token });
      const first = await openEvents(sessionId, { format, token: user.token });
      const { task } = await post(user, sessionId, agent.id, 'a long answer please');
      const isDone = (e: StreamedEvent) => e.type === 'task.completed' && e.task_id === task.id;

      await first.waitFor((e) => e.type === 'message.delta');
      await first.waitFor(() => first.events.filter((e) => e.type === 'message.delta').length >= 3);
      first.close();
      const seen = [...first.events];
      await sleep(150); // events keep flowing while the client is away
      const resumed = await openEvents(sessionId, {
        format,
        token: user.token,
        lastEventId: seen.at(-1)!.id,
        viaQuery: format === 'ndjson',
      });
      await resumed.waitFor(isDone);
      const all = await reference.waitFor(isDone).then(() => reference.events);
      resumed.close();
      reference.close();
      const combined = [...seen, ...resumed.events];
      expect(combined.map((e) => e.id)).to.deep.equal(all.map((e) => e.id));
      expect(combined).to.deep.equal(all);
      expect(resumed.events.length, 'the resumed client got what it missed').to.be.greaterThan(0);
    });
  }

  it('replays everything retained with last_event_id=0 and sends heartbeats on idle streams', async () => {
    const { user, agent } = await setup();
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'hello');
    await waitForTask(user, task.id);
    const replay = await openEvents(sessionId, { format: 'ndjson', token: user.token, lastEventId: 0 });
    await replay.waitFor((e) => e.type === 'task.completed');
    replay.close();
    expect(replay.events[0]!.id).to.equal(1);
    expect(replay.events.map((e) => e.type)).to.include.members(['message.created', 'task.queued', 'task.started', 'task.completed']);

    const quiet = await startExtraApi({ HEARTBEAT_MS: '200' });
    try {
      const idle = await openEvents(sessionId, { format: 'sse', token: user.token, base: quiet.url });
      await sleep(700);
      idle.close();
      expect(idle.heartbeats).to.be.at.least(2);
    } finally {
      await quiet.close();
    }
  });

  it('recovers a task whose worker was SIGKILLed: completed once, exactly one assistant message', async () => {
    const { user, agent, model } = await setup({ failures: [{ hang: true }], chunks: 3 });
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'survive a crash');
    await fake.waitForRequests(model, 1);
    const queue = queueOf(agent.id);
    const job = await queue.getJob(task.id);
    await queue.close();
    const victim = workers.find((w) => job?.processedBy?.endsWith(`:${w.pid}`));
    expect(victim, `the running worker (${job?.processedBy}) is one of ours`).to.not.equal(undefined);
    victim!.kill('SIGKILL');
    await victim!.exited;

    const done = await waitForTask(user, task.id, ['completed', 'failed', 'cancelled'], 40_000);
    expect(done.status).to.equal('completed');
    expect(done.attempts).to.equal(2);
    expect(fake.stats(model).requests).to.equal(2);
    const assistant = (await messagesOf(user, sessionId)).filter((m) => m.role === 'assistant');
    expect(assistant).to.have.length(1);
    expect(assistant[0].task_id).to.equal(task.id);
    const rows = await withDb((c) => c.query("select count(*)::int as n from messages where task_id = $1 and role = 'assistant'", [task.id]));
    expect(rows.rows[0].n).to.equal(1);
    await replaceDeadWorkers();
  });

  it('drains on SIGTERM: the running task finishes and the worker exits cleanly', async () => {
    const { user, agent, model } = await setup({ firstChunkDelayMs: 1000, chunks: 2 });
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'finish before you go');
    await fake.waitForRequests(model, 1);
    const queue = queueOf(agent.id);
    const job = await queue.getJob(task.id);
    await queue.close();
    const worker = workers.find((w) => job?.processedBy?.endsWith(`:${w.pid}`))!;
    expect(worker).to.not.equal(undefined);
    worker.kill('SIGTERM');
    const code = await worker.exited;
    expect(code, worker.output().slice(-2000)).to.equal(0);
    const done = await waitForTask(user, task.id);
    expect(done.status).to.equal('completed');
    expect(done.attempts, 'finished by the draining worker, not retried').to.equal(1);
    expect(fake.stats(model).requests).to.equal(1);
    await replaceDeadWorkers();
  });

  it('retries provider 500s with backoff and completes', async () => {
    const { user, agent, model } = await setup({ failures: [{ status: 500 }, { status: 500 }], reply: 'third time lucky' });
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'flaky provider');
    const done = await waitForTask(user, task.id);
    expect(done.status).to.equal('completed');
    expect(done.result).to.equal('third time lucky');
    expect(fake.stats(model).requests).to.equal(3);
  });

  it('fails a task at once on a provider 400, with a readable error and a task.failed event', async () => {
    const { user, agent, model } = await setup({ failures: [{ status: 400, message: "Unsupported parameter: 'top_p'" }] });
    const sessionId = await newSession(user);
    const events = await openEvents(sessionId, { format: 'ndjson', token: user.token });
    const { task } = await post(user, sessionId, agent.id, 'bad request');
    const failedEvent = await events.waitFor((e) => e.type === 'task.failed');
    events.close();
    const done = await waitForTask(user, task.id);
    expect(done.status).to.equal('failed');
    expect(done.error.code).to.equal('provider_bad_request');
    expect(done.error.message).to.contain("Unsupported parameter: 'top_p'");
    expect(failedEvent.data.error).to.deep.equal(done.error);
    expect(fake.stats(model).requests, 'not retried').to.equal(1);
    expect((await messagesOf(user, sessionId)).filter((m) => m.role === 'assistant')).to.have.length(0);
  });

  it('cancels a queued task: it never reaches the provider and the session moves on', async () => {
    const { user, agent, model } = await setup({ firstChunkDelayMs: 600, chunks: 1 }, { concurrency_limit: 1 });
    const sessionId = await newSession(user);
    const otherSession = await newSession(user);
    const head = await post(user, sessionId, agent.id, 'one');
    const behind = await post(user, sessionId, agent.id, 'two (cancel me)');
    const last = await post(user, sessionId, agent.id, 'three');
    const waitingOnLimit = await post(user, otherSession, agent.id, 'other session (cancel me)');
    await fake.waitForRequests(model, 1);

    for (const t of [behind, waitingOnLimit]) {
      const res = await request('POST', `/v1/tasks/${t.task.id}/cancel`, { token: user.token });
      expect(res.status).to.equal(202);
      expect(res.body.status).to.equal('cancelled');
    }
    const again = await request('POST', `/v1/tasks/${behind.task.id}/cancel`, { token: user.token });
    expectError(again, 409, 'task_finished');

    expect((await waitForTask(user, head.task.id)).status).to.equal('completed');
    expect((await waitForTask(user, last.task.id)).status).to.equal('completed');
    const contents = fake.requests(model).map((r) => r.body.messages.at(-1).content);
    expect(contents).to.deep.equal(['one', 'three']);
    expect((await request('GET', `/v1/tasks/${waitingOnLimit.task.id}`, { token: user.token })).body.status).to.equal('cancelled');
  });

  it('cancels a running task by aborting the in-flight model call', async () => {
    const { user, agent, model } = await setup({ failures: [{ hang: true }] });
    const sessionId = await newSession(user);
    const events = await openEvents(sessionId, { format: 'sse', token: user.token });
    const { task } = await post(user, sessionId, agent.id, 'never mind');
    await fake.waitForRequests(model, 1);
    const res = await request('POST', `/v1/tasks/${task.id}/cancel`, { token: user.token });
    expect(res.status).to.equal(202);
    await events.waitFor((e) => e.type === 'task.cancelled');
    await fake.waitForStats(model, (s) => s.inFlight === 0 && s.clientClosed === 1, 5000);
    const done = await waitForTask(user, task.id);
    expect(done.status).to.equal('cancelled');
    const next = await post(user, sessionId, agent.id, 'still there?');
    expect((await waitForTask(user, next.task.id)).status).to.equal('completed');
    events.close();
    expect((await messagesOf(user, sessionId)).filter((m) => m.role === 'assistant').map((m) => m.task_id)).to.deep.equal([next.task.id]);
  });

  it('applies a PATCHed concurrency_limit to work already queued', async () => {
    const { user, agent, model } = await setup({ firstChunkDelayMs: 500, chunks: 1 }, { concurrency_limit: 1 });
    const sessions = await Promise.all(Array.from({ length: 6 }, () => newSession(user)));
    const tasks = await Promise.all(sessions.map((s) => post(user, s, agent.id, 'go')));
    await fake.waitForRequests(model, 1);
    expect(fake.stats(model).maxInFlight).to.equal(1);
    const res = await request('PATCH', `/v1/agents/${agent.id}`, { token: user.token, body: { concurrency_limit: 3 } });
    expect(res.status).to.equal(200);
    await Promise.all(tasks.map((t) => waitForTask(user, t.task.id)));
    expect(fake.stats(model).maxInFlight).to.equal(3);
  });

  it('recovers a task that was stored but never reached the queue (the sweeper)', async () => {
    const { user, agent } = await setup({ reply: 'found you' });
    const sessionId = await newSession(user);
    const messageId = randomUUID();
    const taskId = randomUUID();
    await withDb(async (c) => {
      const at = new Date(Date.now() - 10_000);
      await c.query(
        `insert into messages (id, session_id, role, content, agent_id, task_id, created_at) values ($1, $2, 'user', 'lost in transit', $3, $4, $5)`,
        [messageId, sessionId, agent.id, taskId, at],
      );
      await c.query(
        `insert into tasks (id, user_id, session_id, agent_id, status, input, usage, attempts, created_at, updated_at)
         values ($1, $2, $3, $4, 'queued', $5, '{"prompt_tokens":0,"completion_tokens":0}', 0, $6, $6)`,
        [taskId, user.user.id, sessionId, agent.id, JSON.stringify({ content: 'lost in transit', message_id: messageId }), at],
      );
    });
    const done = await waitForTask(user, taskId, ['completed', 'failed'], 20_000);
    expect(done.status).to.equal('completed');
    expect(done.result).to.equal('found you');
  });

  it('answers 503 and stores nothing when the queue (Redis) is unreachable', async () => {
    const { user, agent } = await setup();
    const sessionId = await newSession(user);
    const down = await startExtraApi({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const res = await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, base: down.url, body: { content: 'hello?', agent_id: agent.id } });
      expectError(res, 503, 'queue_unavailable');
      expect(res.headers.get('retry-after')).to.equal('5');
    } finally {
      await down.close();
    }
    expect(await messagesOf(user, sessionId)).to.have.length(0);
    const tasks = await request('GET', `/v1/sessions/${sessionId}/tasks`, { token: user.token });
    expect(tasks.body.data).to.have.length(0);
  });

  it("hides a user's tasks and streams from everyone else (404)", async () => {
    const { user, agent } = await setup({ failures: [{ hang: true }] });
    const stranger = await registerUser();
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'private');
    expectError(await request('GET', `/v1/tasks/${task.id}`, { token: stranger.token }), 404, 'not_found');
    expectError(await request('POST', `/v1/tasks/${task.id}/cancel`, { token: stranger.token }), 404, 'not_found');
    expectError(await request('GET', `/v1/sessions/${sessionId}/tasks`, { token: stranger.token }), 404, 'not_found');
    expectError(await request('GET', `/v1/sessions/${sessionId}/events`, { token: stranger.token }), 404, 'not_found');
    expectError(
      await request('POST', `/v1/sessions/${sessionId}/messages`, { token: stranger.token, body: { content: 'x', agent_id: agent.id } }),
      404,
      'not_found',
    );
    const ownSession = await newSession(stranger);
    expectError(
      await request('POST', `/v1/sessions/${ownSession}/messages`, { token: stranger.token, body: { content: 'x', agent_id: agent.id } }),
      404,
      'not_found',
    );
    expect((await request('GET', `/v1/tasks/${task.id}`, { token: user.token })).body.status).to.be.oneOf(['queued', 'running']);
    await request('POST', `/v1/tasks/${task.id}/cancel`, { token: user.token });
  });

  it('validates posted messages: content required, agent_id needed until orchestration ships, session_busy with on_busy=reject', async () => {
    const { user, agent } = await setup({ firstChunkDelayMs: 300 });
    const sessionId = await newSession(user);
    expectError(await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, body: { agent_id: agent.id } }), 422, 'validation_failed');
    expectError(await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, body: { content: 'x' } }), 422, 'orchestration_unavailable');
    expectError(
      await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, body: { content: 'x', agent_id: agent.id, params: { temperature: 9 } } }),
      422,
      'validation_failed',
    );
    const first = await post(user, sessionId, agent.id, 'busy now');
    expectError(
      await request('POST', `/v1/sessions/${sessionId}/messages`, { token: user.token, body: { content: 'x', agent_id: agent.id, on_busy: 'reject' } }),
      409,
      'session_busy',
    );
    await waitForTask(user, first.task.id);
  });

  it('merges per-message params over the agent params when calling the model', async () => {
    const { user, agent, model } = await setup({}, { params: { temperature: 0.2, max_tokens: 50 } });
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'tune', { params: { temperature: 0.9, top_p: 0.5 } });
    await waitForTask(user, task.id);
    const body = fake.requests(model)[0]!.body;
    expect(body).to.include({ temperature: 0.9, top_p: 0.5, max_tokens: 50 });
  });

  it('shows the agent queues in Bull Board to admins only', async () => {
    const { user, agent } = await setup();
    expectError(await request('GET', '/admin/queues'), 401, 'unauthorized');
    expectError(await request('GET', '/admin/queues', { token: user.token }), 403, 'forbidden');
    await withOrm((orm) => setRole(orm.em.fork(), user.email, 'admin'));
    const page = await request('GET', '/admin/queues', { token: user.token });
    expect(page.status).to.equal(200);
    expect(String(page.body)).to.contain('<html');
    const viaQuery = await fetch(`${harness().web.url}/admin/queues?token=${user.token}`);
    expect(viaQuery.status).to.equal(200);
    const cookie = viaQuery.headers.get('set-cookie')!;
    expect(cookie).to.contain('httponly');
    const queues = await request('GET', '/admin/queues/api/queues', { headers: { cookie: cookie.split(';')[0]! } });
    expect(queues.status).to.equal(200);
    expect(JSON.stringify(queues.body)).to.contain(agentQueueName(agent.id));
  });

  it('fails the unfinished tasks of a deleted agent (agent_deleted) and lets the session move on', async () => {
    const { user, agent, model } = await setup({ failures: [{ hang: true }] }, { concurrency_limit: 1 });
    const other = await setup();
    const sessionId = await newSession(user);
    const running = await post(user, sessionId, agent.id, 'running when deleted');
    const queued = await post(user, sessionId, agent.id, 'queued when deleted');
    await fake.waitForRequests(model, 1);
    const otherAgent = await request('POST', '/v1/agents', {
      token: user.token,
      body: { name: `other-${randomUUID().slice(0, 8)}`, system_prompt: 'You help.', model: other.model },
    });
    const after = await post(user, sessionId, otherAgent.body.id, 'to another agent');
    expect((await request('DELETE', `/v1/agents/${agent.id}`, { token: user.token })).status).to.equal(204);
    for (const t of [running, queued]) {
      const done = await waitForTask(user, t.task.id);
      expect(done.status).to.equal('failed');
      expect(done.error.code).to.equal('agent_deleted');
    }
    expect((await waitForTask(user, after.task.id)).status).to.equal('completed');
    await fake.waitForStats(model, (s) => s.inFlight === 0, 5000);
  });

  it('ends live streams when the API loses its Redis subscriber, so clients resume without a gap', async () => {
    const { user, agent } = await setup({ chunks: 30, chunkDelayMs: 20 });
    const sessionId = await newSession(user);
    const reference = await openEvents(sessionId, { format: 'ndjson', token: user.token });
    const first = await openEvents(sessionId, { format: 'ndjson', token: user.token });
    const { task } = await post(user, sessionId, agent.id, 'keep talking');
    await first.waitFor((e) => e.type === 'message.delta');
    const clients = (await redis.client('LIST')) as string;
    const line = clients.split('\n').find((l) => l.includes(`name=cadre:subscriber:${process.pid} `));
    expect(line, 'the API subscriber connection').to.be.a('string');
    await redis.client('KILL', 'ID', /id=(\d+)/.exec(line!)![1]!);
    await first.closed; // the server ended the stream instead of leaving a silent gap
    const seen = [...first.events];
    const resumed = await openEvents(sessionId, { format: 'ndjson', token: user.token, lastEventId: seen.at(-1)!.id });
    const isDone = (e: StreamedEvent) => e.type === 'task.completed' && e.task_id === task.id;
    await resumed.waitFor(isDone);
    resumed.close();
    const all = await reference.waitFor(isDone).then(() => reference.events).catch(() => null);
    reference.close();
    const combined = [...seen, ...resumed.events];
    expect(combined.map((e) => e.id)).to.deep.equal(combined.map((_, i) => combined[0]!.id + i), 'no gap, no duplicate');
    if (all) expect(combined.at(-1)!.id).to.equal(all.at(-1)!.id);
  });

  it('announces a task whose end was committed but never published (the sweeper)', async () => {
    const { user, agent } = await setup();
    const sessionId = await newSession(user);
    const taskId = randomUUID();
    const messageId = randomUUID();
    await withDb(async (c) => {
      const at = new Date(Date.now() - 20_000);
      await c.query(
        `insert into tasks (id, user_id, session_id, agent_id, status, input, result, usage, attempts, created_at, started_at, finished_at, updated_at)
         values ($1, $2, $3, $4, 'completed', $5, 'done long ago', '{"prompt_tokens":1,"completion_tokens":2}', 1, $6, $6, $6, $6)`,
        [taskId, user.user.id, sessionId, agent.id, JSON.stringify({ content: 'q', message_id: messageId }), at],
      );
      await c.query(`insert into messages (id, session_id, role, content, agent_id, task_id, created_at) values ($1, $2, 'assistant', 'done long ago', $3, $4, $5)`, [
        randomUUID(),
        sessionId,
        agent.id,
        taskId,
        at,
      ]);
    });
    const events = await openEvents(sessionId, { format: 'sse', token: user.token, lastEventId: 0 });
    const completed = await events.waitFor((e) => e.type === 'task.completed' && e.task_id === taskId, 15_000);
    events.close();
    expect(completed.data.task.result).to.equal('done long ago');
    expect(events.events.map((e) => e.type)).to.deep.equal(['message.created', 'task.completed']);
    const { rows } = await withDb((c) => c.query('select notified_at from tasks where id = $1', [taskId]));
    expect(rows[0].notified_at).to.be.an.instanceOf(Date);
  });

  it('aborts a running task cancelled in the database even when the cancel message was missed', async () => {
    const { user, agent, model } = await setup({ failures: [{ hang: true }] });
    const sessionId = await newSession(user);
    const { task } = await post(user, sessionId, agent.id, 'cancel me quietly');
    await fake.waitForRequests(model, 1);
    // As if the pub/sub message had been lost: only the row changes.
    await withDb((c) => c.query(`update tasks set status = 'cancelled', finished_at = now() where id = $1`, [task.id]));
    await fake.waitForStats(model, (s) => s.clientClosed === 1, 6000);
    expect((await messagesOf(user, sessionId)).filter((m) => m.role === 'assistant')).to.have.length(0);
  });

  it('opens a consumer for an agent only while its queue has work, and releases it when idle', async () => {
    const { user, agent } = await setup();
    const queue = queueOf(agent.id);
    try {
      expect(await queue.getWorkers(), 'nobody consumes a new agent').to.have.length(0);
      const sessionId = await newSession(user);
      const { task } = await post(user, sessionId, agent.id, 'wake up');
      expect((await waitForTask(user, task.id)).status).to.equal('completed');
      expect((await queue.getWorkers()).length, 'both workers opened a consumer').to.equal(2);
      // Test workers close consumers idle for 3 s (WORKER_IDLE_CLOSE_MS) and check every second.
      const deadline = Date.now() + 10_000;
      while ((await queue.getWorkers()).length > 0 && Date.now() < deadline) await sleep(250);
      expect(await queue.getWorkers(), 'idle consumers were closed').to.have.length(0);
      const again = await post(user, sessionId, agent.id, 'and again');
      expect((await waitForTask(user, again.task.id)).status, 'a closed queue reopens on new work').to.equal('completed');
    } finally {
      await queue.close();
    }
  });

  it('refuses to boot a worker when a job name has no handler', () => {
    expect(() => assertHandlersComplete({})).to.throw(/agent\.run/);
    expect(() => assertHandlersComplete({ 'agent.run': async () => {} })).to.not.throw();
  });
});
