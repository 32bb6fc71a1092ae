import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from 'openai';

export type LlmErrorCode =
  | 'provider_timeout'
  | 'provider_rate_limited'
  | 'provider_unavailable'
  | 'provider_bad_request'
  | 'provider_auth_failed'
  | 'model_not_found'
  | 'provider_error'
  | 'aborted'
  | 'unknown_provider';

/** Codes whose cause is usually transient; the SDK has already retried them `llmMaxRetries` times. */
const RETRYABLE: ReadonlySet<string> = new Set(['provider_timeout', 'provider_rate_limited', 'provider_unavailable']);

/**
 * A failed LLM call with a stable `code`. `retryable` says whether the failure is
 * transient in nature (a later attempt may succeed), not whether the SDK retried it.
 */
export class LlmError extends Error {
  readonly code: LlmErrorCode;
  readonly status?: number;
  readonly retryable: boolean;
  /** Provider name as used in model strings ("default", "offline" or an LLM_PROVIDERS name). */
  readonly provider?: string;
  /** From the provider's Retry-After / retry-after-ms header, when it sent one. */
  readonly retryAfterMs?: number;

  constructor(
    code: LlmErrorCode,
    message: string,
    opts: { status?: number; retryable?: boolean; provider?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LlmError';
    this.code = code;
    if (opts.status !== undefined) this.status = opts.status;
    this.retryable = opts.retryable ?? RETRYABLE.has(code);
    if (opts.provider !== undefined) this.provider = opts.provider;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface ErrorContext {
  provider: string;
  model: string;
  /** Scrubbed from every message, in case a provider echoes it back. */
  apiKey?: string | undefined;
}

function isAbortLike(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

/** The provider's own words: the `error.message` of its JSON body when it sent one. */
function providerMessage(err: APIError): string {
  const body = err.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string' && body.message) return body.message;
  // APIError prefixes "<status> "; the status is reported separately.
  return err.message.replace(/^\d{3}\s+/, '');
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Number(ms);
  const s = headers?.get('retry-after');
  if (!s) return undefined;
  if (Number.isFinite(Number(s))) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** "fetch failed: connect ECONNREFUSED 127.0.0.1:11434": the nested causes say what went wrong. */
function causes(err: unknown): string {
  const out: string[] = [];
  let cause = (err as { cause?: unknown } | undefined)?.cause;
  while (cause instanceof Error && out.length < 3) {
    if (cause.message && !out.includes(cause.message)) out.push(cause.message);
    cause = cause.cause;
  }
  return out.join(': ');
}

function scrub(message: string, apiKey: string | undefined): string {
  return apiKey && apiKey.length >= 4 ? message.split(apiKey).join('***') : message;
}

/**
 * Maps anything the `openai` SDK (or the stream under it) throws to an LlmError.
 * `aborted` is decided by the caller's signal, not by the error's shape, because the
 * SDK reports a caller abort mid-stream as a plain end of stream.
 */
export function toLlmError(err: unknown, ctx: ErrorContext, callerAborted: boolean): LlmError {
  if (err instanceof LlmError) return err;
  const who = `LLM provider "${ctx.provider}"`;
  const make = (code: LlmErrorCode, message: string, opts: ConstructorParameters<typeof LlmError>[2] = {}) =>
    new LlmError(code, scrub(message, ctx.apiKey), { provider: ctx.provider, cause: err, ...opts });

  if (callerAborted || err instanceof APIUserAbortError || isAbortLike(err)) {
    return make('aborted', `${who}: request for model "${ctx.model}" was aborted`);
  }
  if (err instanceof APIConnectionTimeoutError) {
    return make('provider_timeout', `${who} timed out for model "${ctx.model}": ${err.message}`);
  }
  if (err instanceof APIConnectionError) {
    const detail = causes(err);
    return make('provider_unavailable', `${who} is unreachable: ${detail || err.message}`);
  }
  if (err instanceof APIError) {
    const status = err.status;
    const said = providerMessage(err);
    if (status === undefined) {
      // An error event inside an otherwise successful stream.
      const transient = err.type === 'server_error' || err.code === 'server_error';
      return make('provider_error', `${who} reported an error mid-stream: ${said}`, { retryable: transient });
    }
    // No `cause`: everything useful is in the message, and the raw error carries response headers.
    const opts = { status, retryAfterMs: retryAfterMs(err.headers), cause: undefined };
    if (status === 429) return make('provider_rate_limited', `${who} rate-limited the request (429): ${said}`, opts);
    if (status === 408) return make('provider_timeout', `${who} timed out (408): ${said}`, opts);
    if (status >= 500) return make('provider_unavailable', `${who} failed (${status}): ${said}`, opts);
    if (status === 400 || status === 422) {
      return make('provider_bad_request', `${who} rejected the request (${status}): ${said}`, opts);
    }
    if (status === 401 || status === 403) {
      return make('provider_auth_failed', `${who} refused the credentials (${status}): ${said}`, opts);
    }
    if (status === 404) {
      return make('model_not_found', `${who} does not know model "${ctx.model}" (404): ${said}`, opts);
    }
    return make('provider_error', `${who} answered ${status}: ${said}`, { ...opts, retryable: status === 409 });
  }
  if (err instanceof TypeError) {
    // undici's "terminated" / "other side closed": the connection died while the body streamed.
    const detail = causes(err);
    return make('provider_unavailable', `${who}: connection lost mid-stream: ${err.message}${detail ? ` (${detail})` : ''}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  return make('provider_error', `${who} failed for model "${ctx.model}": ${message}`, { retryable: false });
}
