import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * Every setting Cadre reads from the environment, parsed and validated once.
 * Each field's default is declared in `schema` below; .env.example mirrors it.
 */
export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  redisUrl: string;
  /** Prefix for every Redis key and BullMQ queue this deployment owns. */
  redisPrefix: string;
  jwtSecret: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  jwtExpiresIn: number;
  /** How long a token's user (existence, role) is cached per API process; 0 disables. */
  userCacheMs: number;
  adminEmails: string[];
  logLevel: string;
  bodyLimitBytes: number;
  corsOrigins: string[];
  openaiBaseUrl: string | undefined;
  openaiApiKey: string | undefined;
  /** Named OpenAI-compatible providers: `name=baseUrl[|apiKey]`, comma separated. */
  providers: Record<string, { baseUrl: string; apiKey: string | undefined }>;
  llmCallTimeoutMs: number;
  /** Pause between the built-in offline model's chunks, so its replies visibly stream. */
  offlineChunkDelayMs: number;
  llmMaxRetries: number;
  taskTimeoutMs: number;
  historyMaxMessages: number;
  historyMaxTokens: number;
  eventLogMaxLength: number;
  eventLogTtlSeconds: number;
  heartbeatMs: number;
  deltaFlushMs: number;
  workerMaxQueues: number;
  /** Most jobs of one agent a single worker process runs at once (the agent's limit still holds globally). */
  workerAgentConcurrency: number;
  workerIdleCloseMs: number;
  workerLockMs: number;
  workerStalledIntervalMs: number;
  shutdownGraceMs: number;
  sweepIntervalMs: number;
}

const schema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    NODE_ENV: { enum: ['development', 'production', 'test'], default: 'development' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    PUBLIC_URL: { type: 'string', format: 'uri' },
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://', default: 'postgres://postgres@127.0.0.1:5432/cadre' },
    REDIS_URL: { type: 'string', pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' },
    REDIS_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$', default: 'cadre' },
    JWT_SECRET: { type: 'string', minLength: 1 },
    JWT_JWKS_URL: { type: 'string', format: 'uri' },
    JWT_ISSUER: { type: 'string', minLength: 1 },
    JWT_AUDIENCE: { type: 'string', minLength: 1 },
    JWT_EXPIRES_IN: { type: 'integer', minimum: 60, maximum: 2592000, default: 3600 },
    USER_CACHE_MS: { type: 'integer', minimum: 0, maximum: 300000, default: 5000 },
    ADMIN_EMAILS: { type: 'string', default: '' },
    LOG_LEVEL: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' },
    BODY_LIMIT_BYTES: { type: 'integer', minimum: 1024, default: 1048576 },
    CORS_ORIGINS: { type: 'string', default: '' },
    OPENAI_BASE_URL: { type: 'string', format: 'uri' },
    OPENAI_API_KEY: { type: 'string', minLength: 1 },
    LLM_PROVIDERS: { type: 'string', default: '' },
    LLM_CALL_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 60000 },
    OFFLINE_MODEL_CHUNK_DELAY_MS: { type: 'integer', minimum: 0, maximum: 5000, default: 20 },
    LLM_MAX_RETRIES: { type: 'integer', minimum: 0, maximum: 10, default: 3 },
    TASK_TIMEOUT_MS: { type: 'integer', minimum: 1000, default: 300000 },
    HISTORY_MAX_MESSAGES: { type: 'integer', minimum: 0, maximum: 1000, default: 10 },
    HISTORY_MAX_TOKENS: { type: 'integer', minimum: 0, default: 4000 },
    EVENT_LOG_MAX_LENGTH: { type: 'integer', minimum: 10, default: 5000 },
    EVENT_LOG_TTL_SECONDS: { type: 'integer', minimum: 10, default: 86400 },
    HEARTBEAT_MS: { type: 'integer', minimum: 100, maximum: 15000, default: 15000 },
    DELTA_FLUSH_MS: { type: 'integer', minimum: 0, maximum: 1000, default: 15 },
    WORKER_MAX_QUEUES: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
    WORKER_AGENT_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 50, default: 50 },
    WORKER_IDLE_CLOSE_MS: { type: 'integer', minimum: 100, default: 30000 },
    WORKER_LOCK_MS: { type: 'integer', minimum: 1000, default: 30000 },
    WORKER_STALLED_INTERVAL_MS: { type: 'integer', minimum: 500, default: 30000 },
    SHUTDOWN_GRACE_MS: { type: 'integer', minimum: 0, default: 25000 },
    SWEEP_INTERVAL_MS: { type: 'integer', minimum: 500, default: 10000 },
  },
} as const;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

const integerKeys = Object.entries(schema.properties)
  .filter(([, s]) => (s as { type?: string }).type === 'integer')
  .map(([k]) => k);

function parseProviders(raw: string, problems: string[]): Config['providers'] {
  const providers: Config['providers'] = {};
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z0-9_-]+)=(https?:\/\/[^|]+)(?:\|(.+))?$/i.exec(entry);
    if (!m) {
      const shown = entry.replace(/\|.*$/, '|***'); // never echo the API key
      problems.push(`LLM_PROVIDERS: "${shown}" must look like name=https://host/v1 or name=https://host/v1|api-key`);
      continue;
    }
    providers[m[1]!.toLowerCase()] = { baseUrl: m[2]!, apiKey: m[3] };
  }
  return providers;
}

/** Config problems end up on stderr and in deploy logs: never echo secrets or URL passwords. */
function redactValue(name: string, value: unknown): unknown {
  if (/SECRET|KEY|PASSWORD|TOKEN/.test(name)) return '***';
  return typeof value === 'string' ? value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@]*@/i, '$1:***@') : value;
}

/** Development-only: a generated secret kept in an ignored file so tokens survive restarts. */
function devSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value === undefined || value === '') continue;
    if (integerKeys.includes(key)) {
      input[key] = /^-?\d+$/.test(value.trim()) ? Number(value) : value;
    } else {
      input[key] = value;
    }
  }
  const ajv = new Ajv({ allErrors: true, useDefaults: true });
  addFormats.default(ajv);
  const validate = ajv.compile(schema);
  if (!validate(input)) {
    for (const err of validate.errors ?? []) {
      const name = err.instancePath.replace(/^\//, '');
      problems.push(`${name}: ${err.message}${name in input ? ` (got ${JSON.stringify(redactValue(name, input[name]))})` : ''}`);
    }
  }
  const v = input as Record<string, any>;
  const nodeEnv = v.NODE_ENV as Config['nodeEnv'];

  let jwtSecret: string | undefined = v.JWT_SECRET;
  if (nodeEnv === 'production') {
    if (!jwtSecret && !v.JWT_JWKS_URL) problems.push('JWT_SECRET: required in production (or set JWT_JWKS_URL)');
    else if (jwtSecret && (jwtSecret.length < 32 || new Set(jwtSecret).size < 10)) {
      problems.push('JWT_SECRET: too weak for production (use at least 32 random characters)');
    }
  } else if (!jwtSecret) {
    jwtSecret = devSecret(resolve(env.CADRE_STATE_DIR ?? '.cadre', 'jwt-secret'));
  }
  const providers = parseProviders(String(v.LLM_PROVIDERS ?? ''), problems);

  if (problems.length) throw new ConfigError(problems);
  const port = v.PORT as number;
  const host = v.HOST as string;
  return {
    nodeEnv,
    port,
    host,
    publicUrl: (v.PUBLIC_URL as string | undefined) ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    databaseUrl: v.DATABASE_URL,
    redisUrl: v.REDIS_URL,
    redisPrefix: v.REDIS_PREFIX,
    jwtSecret,
    jwtJwksUrl: v.JWT_JWKS_URL,
    jwtIssuer: v.JWT_ISSUER,
    jwtAudience: v.JWT_AUDIENCE,
    jwtExpiresIn: v.JWT_EXPIRES_IN,
    userCacheMs: v.USER_CACHE_MS,
    adminEmails: String(v.ADMIN_EMAILS).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
    logLevel: v.LOG_LEVEL,
    bodyLimitBytes: v.BODY_LIMIT_BYTES,
    corsOrigins: String(v.CORS_ORIGINS).split(',').map((s) => s.trim()).filter(Boolean),
    openaiBaseUrl: v.OPENAI_BASE_URL,
    openaiApiKey: v.OPENAI_API_KEY,
    providers,
    llmCallTimeoutMs: v.LLM_CALL_TIMEOUT_MS,
    offlineChunkDelayMs: v.OFFLINE_MODEL_CHUNK_DELAY_MS,
    llmMaxRetries: v.LLM_MAX_RETRIES,
    taskTimeoutMs: v.TASK_TIMEOUT_MS,
    historyMaxMessages: v.HISTORY_MAX_MESSAGES,
    historyMaxTokens: v.HISTORY_MAX_TOKENS,
    eventLogMaxLength: v.EVENT_LOG_MAX_LENGTH,
    eventLogTtlSeconds: v.EVENT_LOG_TTL_SECONDS,
    heartbeatMs: v.HEARTBEAT_MS,
    deltaFlushMs: v.DELTA_FLUSH_MS,
    workerMaxQueues: v.WORKER_MAX_QUEUES,
    workerAgentConcurrency: v.WORKER_AGENT_CONCURRENCY,
    workerIdleCloseMs: v.WORKER_IDLE_CLOSE_MS,
    workerLockMs: v.WORKER_LOCK_MS,
    workerStalledIntervalMs: v.WORKER_STALLED_INTERVAL_MS,
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    sweepIntervalMs: v.SWEEP_INTERVAL_MS,
  };
}
