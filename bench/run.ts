/**
 * `npm run bench`: direct-execution figures on this machine, against the OpenAI-compatible
 * test server (no time to first token) with real API and worker processes.
 *
 *   (0) baseline: raw BullMQ add() → processor start, same Redis, in this process
 *   (1) POST sent → request arriving at the provider (sequential messages)
 *   (2) provider chunk sent → event received by the client, with 100 and 1000 streams
 *   (3) completed tasks/s with 1 and 2 worker processes (queue pre-filled)
 *
 * Everything runs on its own database and Redis prefix, removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pgAdmin = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const suffix = randomBytes(5).toString('hex');
const dbName = `cadre_bench_${suffix}`;
const dbUrl = pgAdmin.replace(/\/[^/]*$/, `/${dbName}`);
const prefix = `cadre-bench-${suffix}`;
const secret = randomBytes(36).toString('base64url');
const children = new Set<ChildProcess>();

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function run(args: string[], env: Record<string, string>, readyWhen: (out: string) => boolean, ipcReady = false): Promise<ChildProcess> {
  const profile = process.env.BENCH_PROFILE_DIR ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}/${args[1] ?? 'x'}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} not ready:\n${out}`)), 30_000);
    const check = () => {
      if (!ipcReady && readyWhen(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', (d) => ((out += d), check()));
    child.stderr!.on('data', (d) => (out += d));
    child.on('message', (m: any) => {
      if (ipcReady && m?.type === 'ready') {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${out}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

// ---------------------------------------------------------------------------------------

async function baseline(samples: number): Promise<number[]> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('baseline', { connection, prefix: `${prefix}:raw` });
  let resolveStart: ((t: number) => void) | undefined;
  const worker = new Worker('baseline', async () => resolveStart?.(now()), { connection, prefix: `${prefix}:raw`, concurrency: 1 });
  await worker.waitUntilReady();
  const latencies: number[] = [];
  for (let i = 0; i < samples + 20; i++) {
    const started = new Promise<number>((r) => (resolveStart = r));
    const t0 = now();
    await queue.add('job', { i }, { removeOnComplete: true });
    const t1 = await started;
    if (i >= 20) latencies.push(t1 - t0);
  }
  await worker.close();
  await queue.close();
  connection.disconnect();
  return latencies;
}

interface Api {
  base: string;
  token: string;
}

async function call(api: Api, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${api.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** An SSE client that calls `onEvent` with each parsed event and its receipt time. */
async function stream(api: Api, sessionId: string, onEvent: (e: any, at: number) => void): Promise<AbortController> {
  const controller = new AbortController();
  const res = await fetch(`${api.base}/v1/sessions/${sessionId}/events`, {
    headers: { authorization: `Bearer ${api.token}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const at = now();
        buf += decoder.decode(chunk, { stream: true });
        let sep: number;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data) onEvent(JSON.parse(data.slice(6)), at);
        }
      }
    } catch {
      // aborted
    }
  })();
  return controller;
}

/** Stamps in a delta's text: `r<arrival>;` and `<sent>;` (see the fake server's stampContent). */
function stamps(text: string): { arrival?: number; sent: number[] } {
  const out: { arrival?: number; sent: number[] } = { sent: [] };
  for (const part of text.split(';')) {
    if (!part) continue;
    if (part.startsWith('r')) out.arrival = Number(part.slice(1));
    else out.sent.push(Number(part));
  }
  return out;
}

async function dispatchLatency(api: Api, agentId: string, samples: number) {
  const session = await call(api, 'POST', '/v1/sessions', { title: 'bench dispatch' });
  let waiting: ((v: { arrival: number }) => void) | undefined;
  let arrival: number | undefined;
  const ctl = await stream(api, session.id, (e) => {
    if (e.type === 'message.delta') {
      const s = stamps(e.data.text);
      if (s.arrival !== undefined) arrival = s.arrival;
    }
    if (e.type === 'task.completed' && arrival !== undefined) waiting?.({ arrival });
  });
  const toProvider: number[] = [];
  const acceptedToProvider: number[] = [];
  const postRtt: number[] = [];
  for (let i = 0; i < samples + 20; i++) {
    arrival = undefined;
    const done = new Promise<{ arrival: number }>((r) => (waiting = r));
    const t0 = now();
    const posted = await call(api, 'POST', `/v1/sessions/${session.id}/messages`, { content: `ping ${i}`, agent_id: agentId });
    const t1 = now();
    const { arrival: at } = await done;
    if (i >= 20) {
      toProvider.push(at - t0);
      // created_at is stamped by the API just before its transaction commits (ms precision).
      acceptedToProvider.push(at - Date.parse(posted.task.created_at));
      postRtt.push(t1 - t0);
    }
  }
  ctl.abort();
  return { toProvider, acceptedToProvider, postRtt };
}

/** First message to agents no worker consumes yet: includes opening the queue consumer. */
async function coldStart(api: Api, samples: number) {
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const agent = await call(api, 'POST', '/v1/agents', { name: `cold-${i}`, system_prompt: 'You are new.', model: `cold-model-${i}` });
    const session = await call(api, 'POST', '/v1/sessions', { title: 'bench cold start' });
    let resolve: (at: number) => void = () => {};
    const arrived = new Promise<number>((r) => (resolve = r));
    const ctl = await stream(api, session.id, (e) => {
      if (e.type === 'message.delta') {
        const s = stamps(e.data.text);
        if (s.arrival !== undefined) resolve(s.arrival);
      }
    });
    const posted = await call(api, 'POST', `/v1/sessions/${session.id}/messages`, { content: 'first words', agent_id: agent.id });
    latencies.push((await arrived) - Date.parse(posted.task.created_at));
    ctl.abort();
  }
  return latencies;
}

async function chunkLatency(api: Api, agentIds: string[], streams: number, postsPerSecond?: number) {
  const sessions = await pool(Array.from({ length: streams }), 50, () => call(api, 'POST', '/v1/sessions', { title: 'bench stream' }));
  const latencies: number[] = [];
  const toPublish: number[] = [];
  const fromPublish: number[] = [];
  let completed = 0;
  let allDone: () => void = () => {};
  const finished = new Promise<void>((r) => (allDone = r));
  const controllers = await pool(sessions, 100, (s) =>
    stream(api, s.id, (e, at) => {
      if (e.type === 'message.delta') {
        const published = Date.parse(e.ts);
        fromPublish.push(at - published);
        for (const sent of stamps(e.data.text).sent) {
          latencies.push(at - sent);
          toPublish.push(published - sent);
        }
      }
      else if (e.type === 'task.completed' && ++completed === streams) allDone();
    }),
  );
  const t0 = now();
  if (postsPerSecond) {
    // Paced: one message every 1/rate s, each to its own stream; replies overlap but never pile up.
    const posts: Promise<unknown>[] = [];
    for (let i = 0; i < sessions.length; i++) {
      const due = t0 + (i * 1000) / postsPerSecond;
      if (due > now()) await sleep(due - now());
      posts.push(call(api, 'POST', `/v1/sessions/${sessions[i].id}/messages`, { content: `stream ${i}`, agent_id: agentIds[i % agentIds.length] }));
    }
    await Promise.all(posts);
  } else {
    await pool(sessions, 50, (s, i) => call(api, 'POST', `/v1/sessions/${s.id}/messages`, { content: `stream ${i}`, agent_id: agentIds[i % agentIds.length] }));
  }
  await Promise.race([finished, sleep(180_000)]);
  const elapsed = now() - t0;
  for (const c of controllers) c.abort();
  return { latencies, toPublish, fromPublish, completed, elapsed };
}

async function throughput(api: Api, agentIds: string[], tasks: number, workerCount: number, workerEnv: Record<string, string>, db: pg.Client) {
  const sessions = await pool(Array.from({ length: tasks }), 50, () => call(api, 'POST', '/v1/sessions', { title: 'bench throughput' }));
  const posted = await pool(sessions, 50, (s, i) => call(api, 'POST', `/v1/sessions/${s.id}/messages`, { content: `work ${i}`, agent_id: agentIds[i % agentIds.length] }));
  const ids = posted.map((p) => p.task.id);
  const workers = await Promise.all(Array.from({ length: workerCount }, () => run(['src/cli.ts', 'worker'], workerEnv, () => false, true)));
  const t0 = Date.now();
  for (;;) {
    const { rows } = await db.query(`select count(*)::int as n from tasks where id = any($1) and status in ('completed', 'failed')`, [ids]);
    if (rows[0].n === tasks || Date.now() - t0 > 180_000) break;
    await sleep(100);
  }
  const { rows } = await db.query(
    `select extract(epoch from finished_at) * 1000 as t, status from tasks where id = any($1) and finished_at is not null order by finished_at`,
    [ids],
  );
  await Promise.all(workers.map(stop));
  const times = rows.map((r) => Number(r.t));
  const failed = rows.filter((r) => r.status !== 'completed').length;
  const i10 = Math.floor(times.length * 0.1);
  const i90 = Math.floor(times.length * 0.9) - 1;
  const steady = (i90 - i10) / ((times[i90]! - times[i10]!) / 1000);
  // Workers start consuming before they report ready, so time from the first completion.
  const overall = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000);
  return { done: times.length, failed, steady, overall };
}

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: pgAdmin });
  await admin.connect();
  await admin.query(`create database "${dbName}"`);
  await migrate(dbUrl);
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const results: string[] = [];
  try {
    const fakePort = await freePort();
    await run(['test/support/fake-llm.ts', '--port', String(fakePort), '--stamp', '--chunks', '20', '--chunk-delay', process.env.BENCH_CHUNK_DELAY_MS ?? '0'], {}, (o) => o.includes('listening'));
    // A second provider whose replies take 1 s (20 chunks, 50 ms apart), for the paced run.
    const pacedPort = await freePort();
    await run(['test/support/fake-llm.ts', '--port', String(pacedPort), '--stamp', '--chunks', '20', '--chunk-delay', '50'], {}, (o) => o.includes('listening'));
    const env = {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      DATABASE_URL: dbUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      JWT_SECRET: secret,
      OPENAI_BASE_URL: `http://127.0.0.1:${fakePort}/v1`,
      OPENAI_API_KEY: 'bench',
      LLM_PROVIDERS: `paced=http://127.0.0.1:${pacedPort}/v1|bench`,
      HOST: '127.0.0.1',
    };
    const apiPort = await freePort();
    await run(['src/cli.ts', 'web'], { ...env, PORT: String(apiPort) }, (o) => o.includes('Cadre API'));
    const base = `http://127.0.0.1:${apiPort}`;
    const reg = await fetch(`${base}/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `bench-${suffix}@example.com`, password: 'benchmark-password' }),
    }).then((r) => r.json());
    const api: Api = { base, token: reg.access_token };
    const agents = await pool(Array.from({ length: 20 }), 5, (_, i) =>
      call(api, 'POST', '/v1/agents', { name: `bench-${i}`, system_prompt: 'You are fast.', model: `bench-model-${i}`, concurrency_limit: 50 }),
    );
    const agentIds = agents.map((a) => a.id);
    const pacedAgents = await pool(Array.from({ length: 20 }), 5, (_, i) =>
      call(api, 'POST', '/v1/agents', { name: `paced-${i}`, system_prompt: 'You take your time.', model: `paced/bench-model-${i}`, concurrency_limit: 50 }),
    );

    const phases = (process.env.BENCH_PHASES ?? '0,1,2,3').split(',');
    console.log('(0) raw BullMQ baseline …');
    const raw = phases.includes('0') || phases.includes('1') ? await baseline(500) : [NaN];
    const rawP50 = pct(raw, 50);
    const rawP99 = pct(raw, 99);
    results.push(`(0) raw BullMQ add → processor start (500 sequential jobs, in-process worker): p50 ${fmt(rawP50)}, p99 ${fmt(rawP99)}`);

    const workerEnv = { ...env, CADRE_SERVICE: 'worker' };
    const workers = await Promise.all([0, 1].map(() => run(['src/cli.ts', 'worker'], workerEnv, () => false, true)));

    if (phases.includes('1')) {
    console.log('(1) dispatch latency …');
    const d = await dispatchLatency(api, agentIds[0]!, 300);
    const p50 = pct(d.acceptedToProvider, 50);
    const p99 = pct(d.acceptedToProvider, 99);
    results.push(
      `(1) accepted (task stamped before commit) → request at provider (300 sequential messages, 2 workers): p50 ${fmt(p50)}, p99 ${fmt(p99)} ` +
        `(${(p50 / rawP50).toFixed(1)}× / ${(p99 / rawP99).toFixed(1)}× the raw BullMQ baseline)`,
      `    POST sent by the client → request at provider: p50 ${fmt(pct(d.toProvider, 50))}, p99 ${fmt(pct(d.toProvider, 99))}; ` +
        `POST round trip (202): p50 ${fmt(pct(d.postRtt, 50))}, p99 ${fmt(pct(d.postRtt, 99))}`,
    );
    const cold = await coldStart(api, 30);
    results.push(`    first message to an agent no worker consumed yet (30 agents): accepted → provider p50 ${fmt(pct(cold, 50))}, max ${fmt(Math.max(...cold))}`);
    }

    for (const n of phases.includes('2') ? [100, 1000] : []) {
      console.log(`(2) chunk latency with ${n} streams …`);
      const c = await chunkLatency(api, agentIds, n);
      results.push(
        `(2) provider chunk → client, ${n} concurrent SSE streams (20 chunks each, ${process.env.BENCH_CHUNK_DELAY_MS ?? '0'} ms apart): p50 ${fmt(pct(c.latencies, 50))}, p99 ${fmt(pct(c.latencies, 99))} ` +
          `over ${c.latencies.length} chunks; ${c.completed}/${n} tasks completed in ${(c.elapsed / 1000).toFixed(1)} s`,
        `    of which provider → worker publishes the event (ms clock): p50 ${fmt(pct(c.toPublish, 50))}, p99 ${fmt(pct(c.toPublish, 99))}; ` +
          `event published → client: p50 ${fmt(pct(c.fromPublish, 50))}, p99 ${fmt(pct(c.fromPublish, 99))}`,
      );
    }
    if (phases.includes('2')) {
      console.log('(2) chunk latency with 1000 streams, paced …');
      const c = await chunkLatency(api, pacedAgents.map((a) => a.id), 1000, 100);
      results.push(
        `(2) paced: 1000 concurrent SSE streams, 100 messages/s, replies of 20 chunks 50 ms apart (~100 replies streaming at once): ` +
          `p50 ${fmt(pct(c.latencies, 50))}, p99 ${fmt(pct(c.latencies, 99))} over ${c.latencies.length} chunks; ${c.completed}/1000 tasks completed in ${(c.elapsed / 1000).toFixed(1)} s`,
        `    of which provider → worker publishes the event (ms clock): p50 ${fmt(pct(c.toPublish, 50))}, p99 ${fmt(pct(c.toPublish, 99))}; ` +
          `event published → client: p50 ${fmt(pct(c.fromPublish, 50))}, p99 ${fmt(pct(c.fromPublish, 99))}`,
      );
    }
    await Promise.all(workers.map(stop));

    const tasks = Number(process.env.BENCH_TASKS ?? 2000);
    for (const count of phases.includes('3') ? [1, 2] : []) {
      console.log(`(3) throughput with ${count} worker process(es) …`);
      const t = await throughput(api, agentIds, tasks, count, workerEnv, db);
      results.push(
        `(3) ${count} worker process${count > 1 ? 'es' : ''}: ${t.steady.toFixed(0)} tasks/s steady (10th–90th percentile of completions), ` +
          `${t.overall.toFixed(0)} tasks/s overall; ${t.done}/${tasks} finished, ${t.failed} failed`,
      );
    }
  } finally {
    for (const child of [...children]) await stop(child);
    await db.end();
    await admin.query(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
    const redis = new Redis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
  console.log(`\nCadre benchmark (${new Date().toISOString()}, ${(await import('node:os')).cpus().length} cores, Node ${process.version})`);
  for (const line of results) console.log(line);
}

main().catch((err) => {
  console.error(err);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
