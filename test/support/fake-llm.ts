/**
 * An OpenAI-compatible HTTP server for tests and benchmarks. It speaks the real wire
 * protocol over real TCP (SSE chat completion chunks, chat.completion JSON, embeddings,
 * model list, OpenAI-shaped error bodies) and is scriptable per model name: reply text,
 * chunking, delays, and a queue of failures for the next requests.
 *
 * Standalone: `npx tsx test/support/fake-llm.ts --port 4010 [--chunks 8] [--chunk-delay 20]
 * [--first-delay 100] [--timestamps] [--stamp] [--dimensions 1536]` prints its base URL.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface FakeChatMessage {
  role: string;
  content: unknown;
}

export interface FakeChatRequest {
  model: string;
  messages: FakeChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [key: string]: unknown;
}

/** One scripted failure, applied to one request. */
export type FakeFailure =
  /** An HTTP error with an OpenAI error body; `retryAfter` (seconds) / `retryAfterMs` set the headers the SDK honours. */
  | { status: number; message?: string; type?: string; code?: string | null; retryAfter?: number; retryAfterMs?: number }
  /** Never answer; the request ends only when the client gives up (timeout or abort). */
  | { hang: true }
  /** Destroy the connection before any response byte. */
  | { drop: 'before-response' }
  /** Stream `afterChunks` content chunks (default 1), then destroy the connection. */
  | { drop: 'mid-stream'; afterChunks?: number }
  /** Stream `afterChunks` content chunks (default 1), then an SSE `{"error":{...}}` event, then end. */
  | { streamError: string; type?: string; afterChunks?: number };

export interface FakeModelBehaviour {
  /** Fixed reply text, or a function of the request. Default: depends on `mode`. */
  reply?: string | ((request: FakeChatRequest) => string);
  /**
   * 'echo' (default): "echo: <last user message>". 'transcript': one line per prompt message,
   * "<role>: <content>", so a test can see exactly what history the model received.
   */
  mode?: 'echo' | 'transcript';
  /** Content chunks per streamed reply (the text is cut evenly). Default: one per word. */
  chunks?: number;
  /** Before the response headers and first chunk (time to first token). Default 0. */
  firstChunkDelayMs?: number;
  /** Between content chunks. Default 0. */
  chunkDelayMs?: number;
  /** Default 'stop'. */
  finishReason?: string;
  /** false: ignore stream_options.include_usage, like servers that never report usage. Default true. */
  usage?: boolean;
  /** Applied, in order, to the next requests for this model; then requests succeed. */
  failures?: FakeFailure[];
}

export interface FakeModelStats {
  /** Requests received (any endpoint) since the last reset. */
  requests: number;
  inFlight: number;
  maxInFlight: number;
  /** Responses fully written. */
  completed: number;
  /** Connections the client closed before the response was complete (abort, timeout). */
  clientClosed: number;
  /** Scripted failures served. */
  failures: number;
}

export interface FakeRequestRecord {
  path: string;
  body: any;
  headers: IncomingHttpHeaders;
  /** performance.timeOrigin + performance.now() when the body had arrived. */
  receivedAt: number;
}

export interface FakeLlmOptions {
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Behaviour for models with no script of their own (a '*' script overrides it). Default {}. */
  defaults?: FakeModelBehaviour;
  /** Add `x_sent_at` (epoch ms, sub-ms precision) to every chunk, to measure chunk → client latency. Default false. */
  timestamps?: boolean;
  /**
   * Replace each streamed content chunk by its own send time, `<epoch ms>;`, the first one
   * prefixed by the request's arrival time, `r<epoch ms>;`. What reaches a client through
   * any pipeline then carries the provider-side times with it (benchmarks). Default false.
   */
  stampContent?: boolean;
  /** Embedding dimension when the request does not ask for one. Default 1536. */
  embeddingDimensions?: number;
  /** Requests kept per model for `requests()`; older ones are dropped. Default 1000. */
  maxRecordedRequests?: number;
}

export interface FakeLlm {
  /** Base URL ending in /v1, e.g. http://127.0.0.1:41234/v1. */
  url: string;
  port: number;
  close(): Promise<void>;
  /** Replace the behaviour for `model` ('*' for every model without its own script). */
  script(model: string, behaviour: FakeModelBehaviour): void;
  clearScripts(): void;
  /** Per model, or summed over all models when `model` is omitted. */
  stats(model?: string): FakeModelStats;
  resetStats(): void;
  requests(model: string): FakeRequestRecord[];
  /** Resolves once `n` requests for `model` have arrived since the last reset. */
  waitForRequests(model: string, n: number, timeoutMs?: number): Promise<void>;
  /** Resolves once `predicate(stats(model))` holds, e.g. `s => s.inFlight === 0`. */
  waitForStats(model: string | undefined, predicate: (s: FakeModelStats) => boolean, timeoutMs?: number): Promise<void>;
}

const now = () => performance.timeOrigin + performance.now();
const estimateTokens = (text: string) => Math.ceil(text.length / 4);

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

function defaultReply(request: FakeChatRequest, mode: FakeModelBehaviour['mode']): string {
  if (mode === 'transcript') return request.messages.map((m) => `${m.role}: ${contentText(m.content)}`).join('\n');
  const lastUser = request.messages.findLast((m) => m.role === 'user');
  return `echo: ${lastUser ? contentText(lastUser.content) : ''}`;
}

/** Evenly cut into `n` pieces (by code point), or one piece per word when `n` is not set. */
function split(text: string, n: number | undefined): string[] {
  if (n === undefined) return text.match(/\s*\S+\s*/g) ?? (text ? [text] : []);
  const chars = Array.from(text);
  const count = Math.max(1, Math.min(n, chars.length));
  if (!chars.length) return [];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push(chars.slice(Math.floor((i * chars.length) / count), Math.floor(((i + 1) * chars.length) / count)).join(''));
  }
  return out;
}

const ERROR_DEFAULTS: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: 'invalid_request_error', code: null, message: 'Invalid request.' },
  401: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'Incorrect API key provided.' },
  403: { type: 'permission_error', code: null, message: 'You are not allowed to sample from this model.' },
  404: { type: 'invalid_request_error', code: 'model_not_found', message: 'The model does not exist or you do not have access to it.' },
  422: { type: 'invalid_request_error', code: null, message: 'Unprocessable request.' },
  429: { type: 'requests', code: 'rate_limit_exceeded', message: 'Rate limit reached for requests.' },
};

function sendError(
  res: ServerResponse,
  status: number,
  error: { message?: string | undefined; type?: string | undefined; code?: string | null | undefined },
  headers: Record<string, string> = {},
): void {
  const d = ERROR_DEFAULTS[status] ?? { type: 'server_error', code: null, message: 'The server had an error while processing your request.' };
  const body = JSON.stringify({
    error: { message: error.message ?? d.message, type: error.type ?? d.type, param: null, code: error.code === undefined ? d.code : error.code },
  });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Feature-hashed bag of words, L2-normalised: deterministic, and texts sharing words are
 * closer than texts that do not, so search tests get meaningful rankings.
 */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  const v = new Array<number>(dimensions).fill(0);
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  for (const w of words) {
    const h = fnv1a(w);
    v[h % dimensions]! += (h & 0x80000000) !== 0 ? -1 : 1;
  }
  if (!words.length) {
    // No words: a fixed pseudo-random direction seeded by the text itself.
    let s = fnv1a(text) || 1;
    for (let i = 0; i < dimensions; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      v[i] = ((s >>> 0) / 0xffffffff) * 2 - 1;
    }
  }
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum) || 1;
  return v.map((x) => x / norm);
}

function emptyStats(): FakeModelStats {
  return { requests: 0, inFlight: 0, maxInFlight: 0, completed: 0, clientClosed: 0, failures: 0 };
}

interface ModelState {
  stats: FakeModelStats;
  records: FakeRequestRecord[];
}

export async function startFakeLlm(options: FakeLlmOptions = {}): Promise<FakeLlm> {
  const defaults: FakeModelBehaviour = { ...options.defaults, failures: [...(options.defaults?.failures ?? [])] };
  const timestamps = options.timestamps ?? false;
  const stampContent = options.stampContent ?? false;
  const defaultDimensions = options.embeddingDimensions ?? 1536;
  const maxRecorded = options.maxRecordedRequests ?? 1000;
  const scripts = new Map<string, FakeModelBehaviour>();
  const states = new Map<string, ModelState>();
  const total = emptyStats();
  const waiters = new Set<() => void>();
  let seq = 0;

  const state = (model: string): ModelState => {
    let s = states.get(model);
    if (!s) states.set(model, (s = { stats: emptyStats(), records: [] }));
    return s;
  };
  const notify = () => {
    for (const check of waiters) check();
  };
  const behaviourFor = (model: string) => scripts.get(model) ?? scripts.get('*') ?? defaults;

  function begin(model: string, req: IncomingMessage, res: ServerResponse, path: string, body: any): ModelState {
    const s = state(model);
    for (const st of [s.stats, total]) {
      st.requests++;
      st.inFlight++;
      if (st.inFlight > st.maxInFlight) st.maxInFlight = st.inFlight;
    }
    s.records.push({ path, body, headers: req.headers, receivedAt: now() });
    if (s.records.length > maxRecorded * 2) s.records.splice(0, s.records.length - maxRecorded);
    res.once('close', () => {
      // Counted against the current stats: resetStats() carries in-flight requests over.
      const finished = res.writableFinished;
      for (const st of [s.stats, total]) {
        st.inFlight--;
        if (finished) st.completed++;
        else st.clientClosed++;
      }
      notify();
    });
    notify();
    return s;
  }

  /** Applies a failure; returns true when the request has been taken care of. */
  function failBeforeResponse(failure: FakeFailure, req: IncomingMessage, res: ServerResponse): boolean {
    if ('status' in failure) {
      const headers: Record<string, string> = {};
      if (failure.retryAfter !== undefined) headers['retry-after'] = String(failure.retryAfter);
      if (failure.retryAfterMs !== undefined) headers['retry-after-ms'] = String(failure.retryAfterMs);
      sendError(res, failure.status, failure, headers);
      return true;
    }
    if ('hang' in failure) return true;
    if ('drop' in failure && failure.drop === 'before-response') {
      req.socket.destroy();
      return true;
    }
    return false;
  }

  function chat(res: ServerResponse, request: FakeChatRequest, behaviour: FakeModelBehaviour, failure: FakeFailure | undefined): void {
    const arrivedAt = now();
    const model = request.model;
    const reply = typeof behaviour.reply === 'function' ? behaviour.reply(request) : (behaviour.reply ?? defaultReply(request, behaviour.mode));
    const finishReason = behaviour.finishReason ?? 'stop';
    const promptTokens = estimateTokens(request.messages.map((m) => contentText(m.content)).join('\n'));
    const completionTokens = estimateTokens(reply);
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    const id = `chatcmpl-fake-${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    const firstDelay = behaviour.firstChunkDelayMs ?? 0;

    if (request.stream !== true) {
      const send = () => {
        if (res.destroyed) return;
        sendJson(res, {
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: reply, refusal: null }, logprobs: null, finish_reason: finishReason }],
          usage,
          system_fingerprint: null,
        });
      };
      if (firstDelay > 0) setTimeout(send, firstDelay);
      else send();
      return;
    }

    const includeUsage = request.stream_options?.include_usage === true && behaviour.usage !== false;
    const pieces = split(reply, behaviour.chunks);
    const chunkDelay = behaviour.chunkDelayMs ?? 0;
    // Everything but the per-chunk content and timestamp is built once per request.
    const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":[{"index":0,"delta":`;
    const tail = `,"logprobs":null,"finish_reason":null}]${includeUsage ? ',"usage":null' : ''}`;
    const frame = (delta: string, finish = 'null', usageJson = includeUsage ? ',"usage":null' : '') =>
      `${head}${delta},"logprobs":null,"finish_reason":${finish}}]${usageJson}${timestamps ? `,"x_sent_at":${now()}` : ''}}\n\n`;
    let arrival = stampContent ? `r${arrivedAt.toFixed(3)};` : '';
    const stamp = (piece: string) => {
      if (!stampContent) return piece;
      const out = `${arrival}${now().toFixed(3)};`;
      arrival = '';
      return out;
    };
    const content = (piece: string) => `${head}{"content":${JSON.stringify(stamp(piece))}}${tail}${timestamps ? `,"x_sent_at":${now()}` : ''}}\n\n`;

    const stopAfter = failure && ('drop' in failure || 'streamError' in failure) ? Math.max(0, (failure as { afterChunks?: number }).afterChunks ?? 1) : Infinity;
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    res.once('close', () => clearTimeout(timer));

    const finish = () => {
      let out = frame('{}', JSON.stringify(finishReason));
      if (includeUsage) {
        out += `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":[],"usage":${JSON.stringify(usage)}${timestamps ? `,"x_sent_at":${now()}` : ''}}\n\n`;
      }
      res.end(`${out}data: [DONE]\n\n`);
    };
    const step = () => {
      timer = undefined;
      if (res.destroyed) return;
      do {
        if (i >= stopAfter) {
          if (failure && 'drop' in failure) res.destroy();
          else if (failure && 'streamError' in failure) {
            const error = { message: failure.streamError, type: failure.type ?? 'server_error', param: null, code: null };
            res.end(`data: ${JSON.stringify({ error })}\n\n`);
          }
          return;
        }
        if (i >= pieces.length) return finish();
        res.write(content(pieces[i++]!));
      } while (chunkDelay <= 0);
      timer = setTimeout(step, chunkDelay);
    };
    const start = () => {
      timer = undefined;
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.write(frame('{"role":"assistant","content":"","refusal":null}'));
      step();
    };
    if (firstDelay > 0) timer = setTimeout(start, firstDelay);
    else start();
  }

  function embeddings(res: ServerResponse, body: any, behaviour: FakeModelBehaviour): void {
    const raw = body.input;
    const inputs: string[] =
      typeof raw === 'string'
        ? [raw]
        : Array.isArray(raw)
          ? raw.every((x) => typeof x === 'number')
            ? [raw.join(' ')]
            : raw.map((x: unknown) => (Array.isArray(x) ? x.join(' ') : String(x)))
          : [];
    if (!inputs.length) return sendError(res, 400, { message: "'input' is a required property." });
    const dimensions = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : defaultDimensions;
    const base64 = body.encoding_format === 'base64';
    const data = inputs.map((text, index) => {
      const v = fakeEmbedding(text, dimensions);
      return {
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
      };
    });
    const tokens = estimateTokens(inputs.join(' '));
    const send = () => {
      if (!res.destroyed) sendJson(res, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
    };
    const delay = behaviour.firstChunkDelayMs ?? 0;
    if (delay > 0) setTimeout(send, delay);
    else send();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    if (req.method === 'GET' && path === '/v1/models') {
      const ids = new Set(['fake-model', ...[...scripts.keys()].filter((k) => k !== '*'), ...states.keys()]);
      return sendJson(res, { object: 'list', data: [...ids].map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake-llm' })) });
    }
    const endpoint = path === '/v1/chat/completions' ? 'chat' : path === '/v1/embeddings' ? 'embeddings' : undefined;
    if (req.method !== 'POST' || !endpoint) {
      req.resume();
      return sendError(res, 404, { message: `Unknown request URL: ${req.method} ${path}.`, code: 'unknown_url' });
    }
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    let body: any;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      return sendError(res, 400, { message: 'We could not parse the JSON body of your request.' });
    }
    if (!body || typeof body !== 'object' || typeof body.model !== 'string') {
      return sendError(res, 400, { message: "'model' is a required property." });
    }
    const model: string = body.model;
    begin(model, req, res, path, body);
    const behaviour = behaviourFor(model);
    const failure = behaviour.failures?.shift();
    if (failure) {
      state(model).stats.failures++;
      total.failures++;
      if (failBeforeResponse(failure, req, res)) return;
      if (endpoint !== 'chat' || body.stream !== true) {
        // Mid-stream failures on a non-streamed response: the nearest equivalents.
        if ('drop' in failure) return void req.socket.destroy();
        if ('streamError' in failure) return sendError(res, 500, { message: failure.streamError, type: failure.type });
      }
    }
    if (endpoint === 'embeddings') return embeddings(res, body, behaviour);
    if (!Array.isArray(body.messages)) return sendError(res, 400, { message: "'messages' is a required property." });
    chat(res, body as FakeChatRequest, behaviour, failure);
  }

  const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendError(res, 500, { message: `fake-llm: ${err instanceof Error ? err.message : String(err)}` });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  const waitFor = (describe: () => string, check: () => boolean, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(onChange);
        reject(new Error(`fake-llm: timed out after ${timeoutMs} ms waiting for ${describe()}`));
      }, timeoutMs);
      const onChange = () => {
        if (!check()) return;
        clearTimeout(timer);
        waiters.delete(onChange);
        resolve();
      };
      waiters.add(onChange);
    });

  const statsOf = (model?: string): FakeModelStats => ({ ...(model === undefined ? total : state(model).stats) });

  return {
    url: `http://${host}:${port}/v1`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    script(model, behaviour) {
      scripts.set(model, { ...behaviour, failures: [...(behaviour.failures ?? [])] });
    },
    clearScripts() {
      scripts.clear();
    },
    stats: statsOf,
    resetStats() {
      // In-flight requests keep counting against the new stats so inFlight stays truthful.
      for (const s of states.values()) {
        const inFlight = s.stats.inFlight;
        s.stats = { ...emptyStats(), inFlight, maxInFlight: inFlight };
        s.records = [];
      }
      Object.assign(total, emptyStats(), { inFlight: total.inFlight, maxInFlight: total.inFlight });
      notify();
    },
    requests: (model) => state(model).records.slice(-maxRecorded),
    waitForRequests: (model, n, timeoutMs = 5000) =>
      waitFor(
        () => `${n} requests for model "${model}" (got ${state(model).stats.requests})`,
        () => state(model).stats.requests >= n,
        timeoutMs,
      ),
    waitForStats: (model, predicate, timeoutMs = 5000) =>
      waitFor(
        () => `stats of ${model === undefined ? 'all models' : `model "${model}"`} to match (now ${JSON.stringify(statsOf(model))})`,
        () => predicate(statsOf(model)),
        timeoutMs,
      ),
  };
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    const next = argv[i + 1];
    if (inline !== undefined) out[key] = inline;
    else if (next !== undefined && !next.startsWith('--')) out[key] = argv[++i]!;
    else out[key] = true;
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseArgs(process.argv.slice(2));
  const num = (key: string) => (typeof args[key] === 'string' ? Number(args[key]) : undefined);
  const fake = await startFakeLlm({
    port: num('port') ?? 4010,
    host: typeof args.host === 'string' ? args.host : '127.0.0.1',
    timestamps: args.timestamps === true || args.timestamps === 'true',
    stampContent: args.stamp === true || args.stamp === 'true',
    ...(num('dimensions') !== undefined ? { embeddingDimensions: num('dimensions')! } : {}),
    defaults: {
      ...(num('chunks') !== undefined ? { chunks: num('chunks')! } : {}),
      ...(num('chunk-delay') !== undefined ? { chunkDelayMs: num('chunk-delay')! } : {}),
      ...(num('first-delay') !== undefined ? { firstChunkDelayMs: num('first-delay')! } : {}),
    },
  });
  console.log(`fake LLM listening on ${fake.url}`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
