/**
 * The test harness: one fresh PostgreSQL database, one Redis key prefix and one in-process
 * API per test run. `test/support/setup.ts` calls `startHarness()` / `stopHarness()` as
 * mocha global fixtures; suites that start worker processes reuse `harnessEnv()` so the
 * children talk to the same database and prefix.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { createOrm, type MikroORM } from '../../src/db/orm.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/logger.js';
import { startWeb, type WebHandle } from '../../src/web.js';

/** Repository root, for child processes that run `src/cli.ts`. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Server-level connection (database `postgres`); override with TEST_POSTGRES_URL. */
export const postgresAdminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const randomSuffix = () => randomBytes(6).toString('hex');

/** Connection URL for another database on the same server. */
export function databaseUrlFor(name: string): string {
  const url = new URL(postgresAdminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A name for a throwaway database, e.g. `cadre_test_3f9a0c12d4e5`. */
export function uniqueDatabaseName(prefix = 'cadre_test'): string {
  return `${prefix}_${randomSuffix()}`;
}

export async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresAdminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database and returns its URL. */
export async function createDatabase(name: string): Promise<string> {
  await withAdminClient((c) => c.query(`CREATE DATABASE "${name}"`));
  return databaseUrlFor(name);
}

export async function dropDatabase(name: string): Promise<void> {
  await withAdminClient((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}

export async function databaseExists(name: string): Promise<boolean> {
  const { rowCount } = await withAdminClient((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]));
  return rowCount === 1;
}

/** Runs `fn` with a plain pg client on `databaseUrl` (defaults to the run's database). */
export async function withDb<T>(fn: (client: pg.Client) => Promise<T>, databaseUrl = state().databaseUrl): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Deletes every Redis key under `<prefix>:` (SCAN, never KEYS). Returns how many. */
export async function cleanRedisPrefix(prefix: string, url = redisUrl): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export interface HarnessState {
  databaseName: string;
  databaseUrl: string;
  redisPrefix: string;
  jwtSecret: string;
  config: Config;
  web: WebHandle;
}

/**
 * Kept on globalThis: mocha may load this file twice, once through require() (setup.ts and
 * most specs) and once through import() (a dynamic import, or a spec whose graph cannot be
 * required), and both copies must see the one running harness.
 */
interface Store {
  current: HarnessState | undefined;
  extraInstances: Set<WebHandle>;
}
const store: Store = ((globalThis as Record<symbol, unknown>)[Symbol.for('cadre.test.harness')] ??= {
  current: undefined,
  extraInstances: new Set<WebHandle>(),
}) as Store;
const extraInstances = store.extraInstances;

function state(): HarnessState {
  const current = store.current;
  if (!current) throw new Error('test harness is not started (is test/support/setup.ts in .mocharc.json "require"?)');
  return current;
}

export function harness(): HarnessState {
  return state();
}

/** Variables that would change what the suite tests if a developer's shell happened to set them. */
const NEUTRALIZED = [
  'PUBLIC_URL',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'JWT_EXPIRES_IN',
  'ADMIN_EMAILS',
  'BODY_LIMIT_BYTES',
  'CORS_ORIGINS',
  'HOST',
] as const;

function runEnv(run: Pick<HarnessState, 'databaseUrl' | 'redisPrefix' | 'jwtSecret'>): Record<string, string> {
  return {
    ...Object.fromEntries(NEUTRALIZED.map((k) => [k, ''])),
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    PORT: '0',
    DATABASE_URL: run.databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: run.redisPrefix,
    JWT_SECRET: run.jwtSecret,
    // Tests delete users and change roles and expect the next request to see it.
    USER_CACHE_MS: '0',
  };
}

/**
 * Environment for this run: the run's database, Redis prefix and JWT secret. Pass it to
 * `loadConfig` in-process or to child processes (`{ ...process.env, ...harnessEnv() }`).
 */
export function harnessEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return { ...runEnv(state()), ...overrides };
}

/** A Config for this run, as the API process would load it, with overrides applied. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, ...harnessEnv(overrides) });
}

/** Creates the run's database, migrates it and starts the API in-process. */
export async function startHarness(): Promise<HarnessState> {
  if (store.current) return store.current;
  const databaseName = uniqueDatabaseName();
  const databaseUrl = databaseUrlFor(databaseName);
  const redisPrefix = `cadre-test-${randomSuffix()}`;
  const jwtSecret = randomBytes(36).toString('base64url'); // 48 characters
  try {
    await migrate(databaseUrl);
    const config = loadConfig({ ...process.env, ...runEnv({ databaseUrl, redisPrefix, jwtSecret }) });
    const web = await startWeb(config, createLogger('silent'));
    store.current = { databaseName, databaseUrl, redisPrefix, jwtSecret, config, web };
    return store.current;
  } catch (err) {
    await dropDatabase(databaseName).catch(() => {});
    throw err;
  }
}

/** Stops every API instance, drops the database and deletes the run's Redis keys. */
export async function stopHarness(): Promise<void> {
  const s = store.current;
  store.current = undefined;
  await Promise.allSettled([...extraInstances].map((w) => w.close()));
  extraInstances.clear();
  if (!s) return;
  const problems: unknown[] = [];
  await s.web.close().catch((err) => problems.push(err));
  await dropDatabase(s.databaseName).catch((err) => problems.push(err));
  await cleanRedisPrefix(s.redisPrefix).catch((err) => problems.push(err));
  if (problems.length) throw new AggregateError(problems, 'test harness teardown failed');
}

/** Base URL of the run's API, e.g. `http://127.0.0.1:41234`. */
export function api(): string {
  return state().web.url;
}

/**
 * Starts another API instance on the run's database and prefix, with different settings
 * or logger. Close it in the test; teardown closes forgotten ones.
 */
export async function startExtraApi(overrides: Record<string, string> = {}, logger?: Logger): Promise<WebHandle> {
  const config = testConfig(overrides);
  const web = await startWeb(config, logger ?? createLogger('silent'));
  extraInstances.add(web);
  return {
    server: web.server,
    url: web.url,
    close: async () => {
      extraInstances.delete(web);
      await web.close();
    },
  };
}

/** A MikroORM instance on the run's database, for setting up rows the API cannot create yet. */
export async function withOrm<T>(fn: (orm: MikroORM) => Promise<T>): Promise<T> {
  const orm = await createOrm({ databaseUrl: state().databaseUrl, poolMax: 2 });
  try {
    return await fn(orm);
  } finally {
    await orm.close(true);
  }
}

export interface TestResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON when the response is JSON, otherwise the text. */
  body: any;
}

export interface RequestOptions {
  token?: string;
  /** Serialized as JSON with `Content-Type: application/json`. */
  body?: unknown;
  /** Sent as is; `Content-Type` defaults to application/json unless set in `headers`. */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  /** Another instance's base URL; defaults to `api()`. */
  base?: string;
  /** Abort (and fail) the request after this many ms instead of waiting for mocha's timeout. */
  timeoutMs?: number;
}

export async function request(method: string, path: string, options: RequestOptions = {}): Promise<TestResponse> {
  const headers: Record<string, string> = {};
  let payload: string | Buffer | undefined;
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(options.body);
  } else if (options.rawBody !== undefined) {
    headers['content-type'] = 'application/json';
    payload = options.rawBody;
  }
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
  const res = await fetch(`${options.base ?? api()}${path}`, {
    method,
    headers,
    body: payload as BodyInit | undefined,
    signal: options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined,
  });
  const text = await res.text();
  let body: any = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body };
}

export interface TestUser {
  token: string;
  user: { id: string; email: string; role: string; created_at: string };
  email: string;
  password: string;
}

export const uniqueEmail = (tag = 'user') => `${tag}-${randomUUID()}@example.com`;

/** Registers a brand-new user (unique email every call) and returns its token. */
export async function registerUser(options: { email?: string; password?: string; base?: string } = {}): Promise<TestUser> {
  const email = options.email ?? uniqueEmail();
  const password = options.password ?? `pw-${randomBytes(12).toString('base64url')}`;
  const res = await request('POST', '/v1/auth/register', { body: { email, password }, base: options.base });
  if (res.status !== 201) throw new Error(`registerUser: expected 201, got ${res.status} ${JSON.stringify(res.body)}`);
  return { token: res.body.access_token, user: res.body.user, email, password };
}
