import OpenAI from 'openai';
import type { Config } from '../config.js';
import { LlmError, toLlmError } from './llm-error.js';
import {
  OFFLINE_BASE_URL,
  OFFLINE_MODEL,
  OFFLINE_PROVIDER,
  createOfflineFetch,
  type OfflineModelOptions,
} from './offline-model.js';
import { estimateTokens } from './token-estimate.js';

export { LlmError, type LlmErrorCode } from './llm-error.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface StreamChatOptions {
  /** The agent's model string, e.g. "gpt-4o-mini", "ollama/llama3.1", "offline". */
  model: string;
  messages: ChatMessage[];
  params: { temperature?: number; top_p?: number; max_tokens?: number };
  /** Cancel or task timeout: aborts the in-flight HTTP request (and any retry backoff). */
  signal?: AbortSignal;
  /** Called for each non-empty content chunk as it arrives. */
  onDelta: (text: string) => void;
}

export interface StreamChatResult {
  text: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  finishReason: string | null;
  /** The model the provider says answered (it may be more specific than the one asked for). */
  model: string;
  provider: string;
}

export type LlmConfig = Pick<Config, 'openaiBaseUrl' | 'openaiApiKey' | 'providers' | 'llmCallTimeoutMs' | 'llmMaxRetries'>;

/** Name of the provider configured by OPENAI_BASE_URL / OPENAI_API_KEY. */
export const DEFAULT_PROVIDER = 'default';

interface ProviderSettings {
  baseUrl: string;
  apiKey: string | undefined;
}

interface Resolved {
  provider: string;
  model: string;
  offline: boolean;
}

/**
 * One cached `OpenAI` client per provider. Retries (exponential backoff with jitter on
 * 408/409/429/5xx, timeouts and connection errors, honouring Retry-After) are the SDK's:
 * `maxRetries: llmMaxRetries`. The SDK's `timeout` only covers the wait for response
 * headers on a streamed call, so `streamChat` adds its own idle timeout between chunks.
 */
export class LlmClients {
  private readonly clients = new Map<string, OpenAI>();

  constructor(
    private readonly config: LlmConfig,
    private readonly offlineOptions: OfflineModelOptions = {},
  ) {}

  private get hasDefault(): boolean {
    return Boolean(this.config.openaiBaseUrl || this.config.openaiApiKey);
  }

  describe(model: string): { provider: string; model: string; offline: boolean } {
    const s = model.trim();
    const lower = s.toLowerCase();
    if (lower === 'offline' || lower === OFFLINE_MODEL) return { provider: OFFLINE_PROVIDER, model: OFFLINE_MODEL, offline: true };
    if (lower.startsWith('offline/')) return { provider: OFFLINE_PROVIDER, model: s.slice('offline/'.length) || OFFLINE_MODEL, offline: true };
    const slash = s.indexOf('/');
    if (slash > 0) {
      const name = lower.slice(0, slash);
      if (Object.hasOwn(this.config.providers, name)) return { provider: name, model: s.slice(slash + 1), offline: false };
    }
    // Unknown prefixes stay part of the model name: OpenRouter-style ids like "meta-llama/llama-3".
    if (this.hasDefault) return { provider: DEFAULT_PROVIDER, model: s, offline: false };
    return { provider: OFFLINE_PROVIDER, model: OFFLINE_MODEL, offline: true };
  }

  private settings(resolved: Resolved): ProviderSettings {
    if (resolved.offline) return { baseUrl: OFFLINE_BASE_URL, apiKey: undefined };
    if (resolved.provider === DEFAULT_PROVIDER) {
      return { baseUrl: this.config.openaiBaseUrl ?? 'https://api.openai.com/v1', apiKey: this.config.openaiApiKey };
    }
    const p = this.config.providers[resolved.provider];
    if (!p) throw new LlmError('unknown_provider', `LLM provider "${resolved.provider}" is not configured`);
    return p;
  }

  private client(resolved: Resolved): OpenAI {
    let client = this.clients.get(resolved.provider);
    if (client) return client;
    const { baseUrl, apiKey } = this.settings(resolved);
    const thirdParty = resolved.provider !== DEFAULT_PROVIDER;
    client = new OpenAI({
      baseURL: baseUrl,
      // Ollama, vLLM and llama.cpp accept any key, but the SDK refuses to start without one.
      apiKey: apiKey ?? 'not-needed',
      timeout: this.config.llmCallTimeoutMs,
      maxRetries: this.config.llmMaxRetries,
      // OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment belong to OpenAI, not to other hosts.
      ...(thirdParty ? { organization: null, project: null, adminAPIKey: null } : {}),
      ...(resolved.offline ? { fetch: createOfflineFetch(this.offlineOptions) } : {}),
    });
    this.clients.set(resolved.provider, client);
    return client;
  }

  async streamChat(opts: StreamChatOptions): Promise<StreamChatResult> {
    const resolved = this.describe(opts.model);
    const ctx = { provider: resolved.provider, model: resolved.model, apiKey: this.settingsKey(resolved) };
    const callerSignal = opts.signal;
    if (callerSignal?.aborted) throw toLlmError(undefined, ctx, true);

    // Our own controller lets the idle watchdog abort the stream; the caller's signal is composed in.
    const idle = new AbortController();
    const signal = callerSignal ? AbortSignal.any([callerSignal, idle.signal]) : idle.signal;
    let idleTimedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let deltaError: { error: unknown } | undefined;

    let text = '';
    let usage: StreamChatResult['usage'] | undefined;
    let finishReason: string | null = null;
    let model = resolved.model;
    try {
      const client = this.client(resolved);
      const { temperature, top_p, max_tokens } = opts.params;
      const stream = await client.chat.completions.create(
        {
          model: resolved.model,
          messages: opts.messages,
          stream: true,
          stream_options: { include_usage: true },
          ...(temperature !== undefined ? { temperature } : {}),
          ...(top_p !== undefined ? { top_p } : {}),
          ...(max_tokens !== undefined ? { max_tokens } : {}),
        },
        { signal },
      );
      // The SDK timeout stopped at the response headers; a stream that stalls afterwards
      // would otherwise hang until undici's 5-minute body timeout.
      timer = setTimeout(() => {
        idleTimedOut = true;
        idle.abort();
      }, this.config.llmCallTimeoutMs);
      for await (const chunk of stream) {
        timer.refresh();
        if (chunk.model) model = chunk.model;
        if (chunk.usage) usage = { prompt_tokens: chunk.usage.prompt_tokens, completion_tokens: chunk.usage.completion_tokens };
        const choice = chunk.choices[0];
        if (!choice) continue;
        if (choice.finish_reason) finishReason = choice.finish_reason;
        const piece = choice.delta?.content;
        if (piece) {
          text += piece;
          try {
            opts.onDelta(piece);
          } catch (error) {
            deltaError = { error };
            throw error;
          }
        }
      }
    } catch (err) {
      if (deltaError) throw deltaError.error;
      if (idleTimedOut && !callerSignal?.aborted) throw this.idleTimeout(ctx, err);
      throw toLlmError(err, ctx, callerSignal?.aborted ?? false);
    } finally {
      clearTimeout(timer);
    }
    // The SDK ends a stream quietly when its request is aborted, so check why it ended.
    if (callerSignal?.aborted) throw toLlmError(undefined, ctx, true);
    if (idleTimedOut) throw this.idleTimeout(ctx, undefined);

    // Estimated (about four characters per token) when the provider sends no usage chunk,
    // e.g. servers that ignore stream_options.include_usage.
    usage ??= {
      prompt_tokens: estimateTokens(opts.messages.map((m) => m.content).join('\n')),
      completion_tokens: estimateTokens(text),
    };
    return { text, usage, finishReason, model, provider: resolved.provider };
  }

  private settingsKey(resolved: Resolved): string | undefined {
    try {
      return this.settings(resolved).apiKey;
    } catch {
      return undefined;
    }
  }

  private idleTimeout(ctx: { provider: string; model: string }, cause: unknown): LlmError {
    return new LlmError(
      'provider_timeout',
      `LLM provider "${ctx.provider}" sent nothing for ${this.config.llmCallTimeoutMs} ms while streaming model "${ctx.model}"`,
      { provider: ctx.provider, cause },
    );
  }
}
