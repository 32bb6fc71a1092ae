import { contentText, estimateTokens } from './token-estimate.js';

/**
 * The built-in offline model: a deterministic stand-in that lets Cadre run and be tested
 * with no API key and no network. It is served through a custom `fetch` handed to a real
 * `OpenAI` client, so callers exercise the same SDK streaming path as with a real provider.
 * Every reply starts with "[offline model]" so nobody mistakes it for a language model.
 */

export const OFFLINE_PROVIDER = 'offline';
export const OFFLINE_MODEL = 'cadre-offline';
/** Never contacted: `.invalid` cannot resolve, and the custom fetch answers everything. */
export const OFFLINE_BASE_URL = 'http://offline.cadre.invalid/v1';
export const OFFLINE_REPLY_PREFIX = '[offline model]';

export interface OfflineModelOptions {
  /** Pause between streamed chunks, to make streaming visible in demos. Default 0: no delay. */
  chunkDelayMs?: number;
}

interface OfflineMessage {
  role: string;
  content: unknown;
}

/** FNV-1a, enough to give each distinct conversation a distinct, stable fingerprint. */
function fingerprint(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

function squash(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function quote(text: string, max: number): string {
  const s = squash(text);
  return s.length <= max ? s : `${s.slice(0, max).trimEnd()}…`;
}

/** The reply depends only on the messages: same conversation, same words. */
export function offlineReply(messages: OfflineMessage[]): string {
  const lastUserIndex = messages.findLastIndex((m) => m.role === 'user');
  const lastUser = lastUserIndex >= 0 ? contentText(messages[lastUserIndex]!.content) : '';
  const earlier = messages.slice(0, Math.max(lastUserIndex, 0)).filter((m) => m.role !== 'system').length;
  const system = messages.find((m) => m.role === 'system');
  const systemWords = system ? squash(contentText(system.content)).split(' ').filter(Boolean).slice(0, 6) : [];
  const transcript = messages.map((m) => `${m.role}:${contentText(m.content)}`).join('\n');

  const parts = [OFFLINE_REPLY_PREFIX];
  parts.push(lastUser ? `You said: "${quote(lastUser, 80)}".` : 'I did not receive a user message.');
  parts.push(
    earlier === 0
      ? 'This is the first turn I can see.'
      : `I can see ${earlier} earlier message${earlier === 1 ? '' : 's'} in this conversation.`,
  );
  if (systemWords.length) parts.push(`My instructions begin with "${systemWords.join(' ')}".`);
  parts.push(
    'This is a built-in placeholder reply, not a language model; set OPENAI_API_KEY, OPENAI_BASE_URL or LLM_PROVIDERS to use a real one.',
  );
  parts.push(`(conversation ${fingerprint(transcript)})`);
  return parts.join(' ');
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function errorResponse(status: number, message: string, type = 'invalid_request_error'): Response {
  return json(status, { error: { message, type, param: null, code: null } });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

async function bodyText(input: string | URL | Request, init: RequestInit | undefined): Promise<string> {
  if (typeof init?.body === 'string') return init.body;
  if (init?.body != null) return new Response(init.body).text();
  return input instanceof Request ? input.text() : '';
}

/** Splits on words, keeping trailing whitespace, the way token streams arrive. */
function pieces(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [text];
}

interface Completion {
  id: string;
  created: number;
  model: string;
  chunks: string[];
  text: string;
  finishReason: 'stop' | 'length';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

function complete(body: Record<string, unknown>): Completion {
  const messages = (Array.isArray(body.messages) ? body.messages : []) as OfflineMessage[];
  const all = pieces(offlineReply(messages));
  const maxTokens = typeof body.max_tokens === 'number' && body.max_tokens > 0 ? body.max_tokens : Infinity;
  const chunks: string[] = [];
  let text = '';
  for (const piece of all) {
    if (estimateTokens(text + piece) > maxTokens && chunks.length > 0) break;
    chunks.push(piece);
    text += piece;
  }
  const promptTokens = estimateTokens(messages.map((m) => contentText(m.content)).join('\n'));
  const completionTokens = estimateTokens(text);
  return {
    id: `chatcmpl-offline-${fingerprint(text)}`,
    created: Math.floor(Date.now() / 1000),
    model: typeof body.model === 'string' && body.model ? body.model : OFFLINE_MODEL,
    chunks,
    text,
    finishReason: chunks.length < all.length ? 'length' : 'stop',
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  };
}

/** SSE frames exactly as OpenAI sends them: role, content pieces, finish, optional usage, [DONE]. */
function sseFrames(c: Completion, includeUsage: boolean): string[] {
  const head = { id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model, system_fingerprint: null };
  const extra = includeUsage ? { usage: null } : {};
  const frame = (delta: object, finish: string | null) =>
    `data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`;
  const frames = [frame({ role: 'assistant', content: '', refusal: null }, null)];
  for (const piece of c.chunks) frames.push(frame({ content: piece }, null));
  frames.push(frame({}, c.finishReason));
  if (includeUsage) frames.push(`data: ${JSON.stringify({ ...head, choices: [], usage: c.usage })}\n\n`);
  frames.push('data: [DONE]\n\n');
  return frames;
}

function sseResponse(frames: string[], signal: AbortSignal | null | undefined, delayMs: number): Response {
  const encoder = new TextEncoder();
  let next = 0;
  let onAbort: (() => void) | undefined;
  const cleanup = () => {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    onAbort = undefined;
  };
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (!signal) return;
      onAbort = () => {
        cleanup();
        controller.error(abortReason(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    },
    async pull(controller) {
      if (delayMs > 0 && next > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (signal?.aborted) return; // the abort listener has already errored the stream
      controller.enqueue(encoder.encode(frames[next++]!));
      if (next === frames.length) {
        cleanup();
        controller.close();
      }
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
  });
}

/**
 * A `fetch` implementation that answers the OpenAI chat completions API locally.
 * Pass it as `new OpenAI({ fetch: createOfflineFetch(), baseURL: OFFLINE_BASE_URL, ... })`.
 */
export function createOfflineFetch(
  options: OfflineModelOptions = {},
): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  const delayMs = options.chunkDelayMs ?? 0;
  return async (input, init) => {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    if (signal?.aborted) throw abortReason(signal);
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();

    if (method === 'GET' && url.pathname.endsWith('/models')) {
      return json(200, { object: 'list', data: [{ id: OFFLINE_MODEL, object: 'model', created: 0, owned_by: 'cadre' }] });
    }
    if (method !== 'POST' || !url.pathname.endsWith('/chat/completions')) {
      return errorResponse(404, `The offline model only serves POST /chat/completions, not ${method} ${url.pathname}`);
    }
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(await bodyText(input, init));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return errorResponse(400, 'The request body is not a JSON object.');
    }
    if (!Array.isArray(body.messages)) return errorResponse(400, "'messages' is a required property.");

    const c = complete(body);
    if (body.stream === true) {
      const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
      return sseResponse(sseFrames(c, streamOptions?.include_usage === true), signal, delayMs);
    }
    return json(200, {
      id: c.id,
      object: 'chat.completion',
      created: c.created,
      model: c.model,
      choices: [
        { index: 0, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: null, finish_reason: c.finishReason },
      ],
      usage: c.usage,
      system_fingerprint: null,
    });
  };
}
