import { expect } from 'chai';
import OpenAI from 'openai';
import { LlmClients, LlmError, type ChatMessage, type LlmConfig, type StreamChatOptions } from '../src/llm/llm-client.js';
import { startFakeLlm, type FakeLlm } from './support/fake-llm.js';

const noProviders: LlmConfig = {
  openaiBaseUrl: undefined,
  openaiApiKey: undefined,
  providers: {},
  llmCallTimeoutMs: 5000,
  llmMaxRetries: 0,
};

function chat(model: string, content: string, extra: Partial<StreamChatOptions> = {}): StreamChatOptions {
  return { model, messages: [{ role: 'user', content }], params: {}, onDelta: () => {}, ...extra };
}

async function rejection(promise: Promise<unknown>): Promise<LlmError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(LlmError);
    return err as LlmError;
  }
  throw new Error('expected the call to fail');
}

describe('LLM client', () => {
  let fake: FakeLlm;
  let seq = 0;
  /** A model name no other test uses, so scripts and stats never leak between tests. */
  const model = () => `model-${++seq}`;
  const clients = (overrides: Partial<LlmConfig> = {}) =>
    new LlmClients({ ...noProviders, openaiBaseUrl: fake.url, openaiApiKey: 'sk-test-key', ...overrides });

  before(async () => {
    fake = await startFakeLlm();
  });
  after(async () => {
    await fake.close();
  });

  it('streams deltas that concatenate to the final text and reports usage', async () => {
    const m = model();
    fake.script(m, { chunks: 6 });
    const deltas: string[] = [];
    const result = await clients().streamChat(chat(m, 'tell me something', { onDelta: (d) => deltas.push(d) }));
    expect(deltas).to.have.length(6);
    expect(deltas.join('')).to.equal('echo: tell me something');
    expect(result).to.deep.include({ text: 'echo: tell me something', finishReason: 'stop', model: m, provider: 'default' });
    expect(result.usage).to.deep.equal({ prompt_tokens: Math.ceil('tell me something'.length / 4), completion_tokens: 6 });
    const [req] = fake.requests(m);
    expect(req!.body).to.deep.include({ model: m, stream: true, stream_options: { include_usage: true } });
    expect(req!.headers.authorization).to.equal('Bearer sk-test-key');
  });

  it('sends only the model params that are set', async () => {
    const m = model();
    await clients().streamChat(chat(m, 'x', { params: { temperature: 0.3, max_tokens: 50 } }));
    const body = fake.requests(m)[0]!.body;
    expect(body).to.deep.include({ temperature: 0.3, max_tokens: 50 });
    expect(body).to.not.have.property('top_p');
  });

  it('estimates usage when the provider reports none', async () => {
    const m = model();
    fake.script(m, { usage: false, reply: 'twelve chars' });
    const result = await clients().streamChat(chat(m, 'abcdefgh'));
    expect(result.usage).to.deep.equal({ prompt_tokens: 2, completion_tokens: 3 });
  });

  it('retries 5xx through the SDK and completes (two 500s, then success)', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 500 }, { status: 500 }] });
    const result = await clients({ llmMaxRetries: 2 }).streamChat(chat(m, 'persist'));
    expect(result.text).to.equal('echo: persist');
    expect(fake.stats(m)).to.include({ requests: 3, failures: 2, completed: 3 });
  });

  it('honours Retry-After on 429 instead of the default backoff', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 429, retryAfter: 0 }] });
    const started = performance.now();
    await clients({ llmMaxRetries: 1 }).streamChat(chat(m, 'hi'));
    expect(performance.now() - started).to.be.below(350); // the default backoff would wait at least 375 ms
    expect(fake.stats(m).requests).to.equal(2);
  });

  it('reports rate limiting as provider_rate_limited once retries are exhausted', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 429, retryAfter: 0, message: 'slow down' }] });
    const err = await rejection(clients().streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'provider_rate_limited', status: 429, retryable: true, retryAfterMs: 0 });
    expect(err.message).to.contain('slow down');
  });

  it('fails a 400 immediately as provider_bad_request, not retryable, with the provider message', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 400, message: "Invalid value for 'temperature'" }] });
    const err = await rejection(clients({ llmMaxRetries: 3 }).streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'provider_bad_request', status: 400, retryable: false, provider: 'default' });
    expect(err.message).to.contain("Invalid value for 'temperature'").and.contain('"default"');
    expect(fake.stats(m).requests).to.equal(1);
  });

  it('maps 401 to provider_auth_failed without revealing the API key', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 401, message: 'Incorrect API key provided: sk-test-key' }] });
    const err = await rejection(clients().streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'provider_auth_failed', status: 401, retryable: false });
    expect(err.message).to.not.contain('sk-test-key');
    expect(JSON.stringify(err)).to.not.contain('sk-test-key');
  });

  it('maps 404 to model_not_found', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 404 }] });
    const err = await rejection(clients().streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'model_not_found', status: 404, retryable: false });
    expect(err.message).to.contain(m);
  });

  it('maps 503 after retries to provider_unavailable, retryable', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 503, message: 'overloaded' }] });
    const err = await rejection(clients().streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'provider_unavailable', status: 503, retryable: true });
  });

  it('times out a provider that never answers (provider_timeout) and closes the connection', async () => {
    const m = model();
    fake.script(m, { failures: [{ hang: true }] });
    const started = performance.now();
    const err = await rejection(clients({ llmCallTimeoutMs: 300 }).streamChat(chat(m, 'hi')));
    expect(err).to.include({ code: 'provider_timeout', retryable: true });
    expect(performance.now() - started).to.be.within(250, 2000);
    await fake.waitForStats(m, (s) => s.clientClosed === 1 && s.inFlight === 0);
  });

  it('times out a stream that stalls between chunks', async () => {
    const m = model();
    fake.script(m, { chunks: 3, chunkDelayMs: 3000 });
    const deltas: string[] = [];
    const err = await rejection(
      clients({ llmCallTimeoutMs: 300 }).streamChat(chat(m, 'a b c', { onDelta: (d) => deltas.push(d) })),
    );
    expect(err).to.include({ code: 'provider_timeout' });
    expect(deltas).to.have.length(1);
    await fake.waitForStats(m, (s) => s.clientClosed === 1);
  });

  it('aborts mid-stream via AbortSignal: LlmError aborted, quickly, and the server sees the connection close', async () => {
    const m = model();
    fake.script(m, { chunks: 20, chunkDelayMs: 50 });
    const controller = new AbortController();
    const deltas: string[] = [];
    let abortedAt = 0;
    const call = clients().streamChat(
      chat(m, 'a long answer please', {
        signal: controller.signal,
        onDelta: (d) => {
          deltas.push(d);
          if (deltas.length === 2) {
            abortedAt = performance.now();
            controller.abort();
          }
        },
      }),
    );
    const err = await rejection(call);
    expect(err).to.include({ code: 'aborted', retryable: false });
    expect(performance.now() - abortedAt).to.be.below(250);
    expect(deltas).to.have.length(2);
    await fake.waitForStats(m, (s) => s.clientClosed === 1 && s.inFlight === 0, 2000);
  });

  it('aborts during the SDK retry backoff', async () => {
    const m = model();
    fake.script(m, { failures: [{ status: 500 }, { status: 500 }] });
    const signal = AbortSignal.timeout(100);
    const started = performance.now();
    const err = await rejection(clients({ llmMaxRetries: 2 }).streamChat(chat(m, 'hi', { signal })));
    expect(err.code).to.equal('aborted');
    expect(performance.now() - started).to.be.below(300);
    expect(fake.stats(m).requests).to.equal(1);
  });

  it('reports a connection dropped mid-stream as provider_unavailable', async () => {
    const m = model();
    fake.script(m, { chunks: 5, chunkDelayMs: 10, failures: [{ drop: 'mid-stream', afterChunks: 2 }] });
    const err = await rejection(clients({ llmMaxRetries: 2 }).streamChat(chat(m, 'one two three four')));
    expect(err).to.include({ code: 'provider_unavailable', retryable: true });
    expect(fake.stats(m).requests).to.equal(1); // a started stream is never replayed by the SDK
  });

  it('reports an error event inside the stream as provider_error with the provider message', async () => {
    const m = model();
    fake.script(m, { failures: [{ streamError: 'The server had an error while processing your request.' }] });
    const err = await rejection(clients().streamChat(chat(m, 'one two three')));
    expect(err).to.include({ code: 'provider_error', retryable: true });
    expect(err.message).to.contain('The server had an error');
  });

  it('rethrows an error thrown by onDelta unchanged and stops the stream', async () => {
    const m = model();
    fake.script(m, { chunks: 10, chunkDelayMs: 20 });
    const boom = new Error('consumer failed');
    let thrown: unknown;
    try {
      await clients().streamChat(chat(m, 'x y z', { onDelta: () => { throw boom; } }));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).to.equal(boom);
    await fake.waitForStats(m, (s) => s.clientClosed === 1);
  });

  it('routes "provider/model" to the named provider with the bare model name', async () => {
    const m = model();
    const llm = clients({ openaiBaseUrl: 'http://127.0.0.1:9/v1', providers: { fake: { baseUrl: fake.url, apiKey: undefined } } });
    expect(llm.describe(`fake/${m}`)).to.deep.equal({ provider: 'fake', model: m, offline: false });
    const result = await llm.streamChat(chat(`fake/${m}`, 'routed'));
    expect(result).to.deep.include({ text: 'echo: routed', provider: 'fake', model: m });
    expect(fake.requests(m)[0]!.headers.authorization).to.equal('Bearer not-needed');
  });

  it('keeps an unknown prefix as part of the model name for the default provider', async () => {
    const llm = clients();
    expect(llm.describe('meta-llama/llama-3')).to.deep.equal({ provider: 'default', model: 'meta-llama/llama-3', offline: false });
    const result = await llm.streamChat(chat('meta-llama/llama-3', 'hi'));
    expect(result.model).to.equal('meta-llama/llama-3');
    expect(fake.stats('meta-llama/llama-3').requests).to.equal(1);
  });

  it('lets the model see the whole conversation (transcript mode)', async () => {
    const m = model();
    fake.script(m, { mode: 'transcript' });
    const messages: ChatMessage[] = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'first answer' },
      { role: 'user', content: 'second question' },
    ];
    const result = await clients().streamChat({ model: m, messages, params: {}, onDelta: () => {} });
    expect(result.text).to.equal('system: be brief\nuser: first question\nassistant: first answer\nuser: second question');
  });
});

describe('offline model', () => {
  const offline = new LlmClients(noProviders);
  const conversation = (last: string): ChatMessage[] => [
    { role: 'system', content: 'You are a careful research assistant.' },
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'hi there' },
    { role: 'user', content: last },
  ];
  const run = async (llm: LlmClients, model: string, messages: ChatMessage[]) => {
    const deltas: string[] = [];
    const result = await llm.streamChat({ model, messages, params: {}, onDelta: (d) => deltas.push(d) });
    return { result, deltas };
  };

  it('streams several deltas deterministically, labelled as the offline model, with usage', async () => {
    const a = await run(offline, 'offline', conversation('What is 2 + 2?'));
    const b = await run(offline, 'offline', conversation('What is 2 + 2?'));
    expect(a.deltas.length).to.be.at.least(4);
    expect(a.deltas.join('')).to.equal(a.result.text);
    expect(a.result.text).to.match(/^\[offline model\]/);
    expect(a.result.text).to.contain('What is 2 + 2?').and.contain('2 earlier messages').and.contain('You are a careful');
    expect(a.result).to.deep.include({ provider: 'offline', finishReason: 'stop' });
    expect(a.result.usage.prompt_tokens).to.be.above(0);
    expect(a.result.usage.completion_tokens).to.equal(Math.ceil(a.result.text.length / 4));
    expect(b.deltas).to.deep.equal(a.deltas);
  });

  it('answers differently to different input', async () => {
    const a = await run(offline, 'offline', conversation('first'));
    const b = await run(offline, 'offline', conversation('second'));
    const c = await run(offline, 'offline', [{ role: 'user', content: 'first' }]);
    expect(a.result.text).to.not.equal(b.result.text);
    expect(a.result.text).to.not.equal(c.result.text);
  });

  it('needs no server: "offline", "cadre-offline" and "offline/x" work even with an unreachable default provider', async () => {
    const llm = new LlmClients({ ...noProviders, openaiBaseUrl: 'http://127.0.0.1:9/v1', llmCallTimeoutMs: 500 });
    for (const model of ['offline', 'cadre-offline', 'offline/demo']) {
      expect(llm.describe(model).offline, model).to.equal(true);
      const { result } = await run(llm, model, [{ role: 'user', content: 'ping' }]);
      expect(result.text).to.match(/^\[offline model\] You said: "ping"/);
    }
  });

  it('serves everything without a named provider when no default provider is configured', async () => {
    expect(offline.describe('gpt-4o')).to.deep.equal({ provider: 'offline', model: 'cadre-offline', offline: true });
    expect(offline.describe('meta-llama/llama-3').offline).to.equal(true);
    const { result } = await run(offline, 'gpt-4o', [{ role: 'user', content: 'anyone there?' }]);
    expect(result.provider).to.equal('offline');
    expect(result.text).to.match(/^\[offline model\]/);
  });

  it('honours max_tokens with finish_reason "length"', async () => {
    const result = await offline.streamChat({ model: 'offline', messages: conversation('a question'), params: { max_tokens: 5 }, onDelta: () => {} });
    expect(result.finishReason).to.equal('length');
    expect(result.usage.completion_tokens).to.be.at.most(5);
  });

  it('aborts when the signal fires', async () => {
    const slow = new LlmClients(noProviders, { chunkDelayMs: 20 });
    const controller = new AbortController();
    const err = await rejection(
      slow.streamChat({ model: 'offline', messages: conversation('x'), params: {}, signal: controller.signal, onDelta: () => controller.abort() }),
    );
    expect(err.code).to.equal('aborted');
  });
});

describe('fake LLM server', () => {
  let fake: FakeLlm;
  before(async () => {
    fake = await startFakeLlm({ embeddingDimensions: 32 });
  });
  after(async () => {
    await fake.close();
  });
  const sdk = () => new OpenAI({ baseURL: fake.url, apiKey: 'k', maxRetries: 0 });

  it('answers non-streamed chat completions with a chat.completion object', async () => {
    const res = await sdk().chat.completions.create({ model: 'plain', messages: [{ role: 'user', content: 'hey' }] });
    expect(res.object).to.equal('chat.completion');
    expect(res.choices[0]!.message.content).to.equal('echo: hey');
    expect(res.usage!.total_tokens).to.be.above(0);
  });

  it('serves deterministic, normalised embeddings as floats and as base64', async () => {
    const input = ['cats purr softly', 'cats purr softly', 'quarterly tax filing'];
    const floats = await sdk().embeddings.create({ model: 'embed', input, encoding_format: 'float' });
    const decoded = await sdk().embeddings.create({ model: 'embed', input }); // the SDK asks for base64 and decodes
    const v = floats.data.map((d) => d.embedding);
    expect(v[0]).to.have.length(32);
    expect(v[0]).to.deep.equal(v[1]);
    expect(Math.hypot(...v[0]!)).to.be.closeTo(1, 1e-9);
    decoded.data.forEach((d, i) => d.embedding.forEach((x, j) => expect(x).to.be.closeTo(v[i]![j]!, 1e-6)));
    expect(fake.requests('embed')[1]!.body.encoding_format).to.equal('base64');
    const sized = await sdk().embeddings.create({ model: 'embed', input: 'x', dimensions: 8, encoding_format: 'float' });
    expect(sized.data[0]!.embedding).to.have.length(8);
  });

  it('lists models and answers unknown routes with an OpenAI error body', async () => {
    const models = await fetch(`${fake.url}/models`).then((r) => r.json());
    expect(models.object).to.equal('list');
    const res = await fetch(`${fake.url}/nope`, { method: 'POST' });
    expect(res.status).to.equal(404);
    expect((await res.json()).error).to.have.all.keys('message', 'type', 'param', 'code');
  });

  it('counts concurrent requests and waits for arrivals', async () => {
    fake.script('busy', { chunks: 4, chunkDelayMs: 30 });
    const client = sdk();
    const run = async () => {
      const stream = await client.chat.completions.create({ model: 'busy', messages: [{ role: 'user', content: 'go' }], stream: true });
      for await (const _ of stream);
    };
    const all = Promise.all([run(), run(), run(), run(), run()]);
    await fake.waitForRequests('busy', 5, 2000);
    expect(fake.stats('busy').inFlight).to.equal(5);
    await all;
    expect(fake.stats('busy')).to.include({ requests: 5, inFlight: 0, maxInFlight: 5, completed: 5 });
    fake.resetStats();
    expect(fake.stats('busy')).to.include({ requests: 0, maxInFlight: 0 });
    expect(fake.requests('busy')).to.have.length(0);
  });

  it('stamps each chunk with x_sent_at when asked to', async () => {
    const timed = await startFakeLlm({ timestamps: true, defaults: { chunks: 3 } });
    try {
      const res = await fetch(`${timed.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 't', messages: [{ role: 'user', content: 'abc def' }], stream: true, stream_options: { include_usage: true } }),
      });
      const events = (await res.text()).split('\n\n').filter(Boolean);
      expect(events.at(-1)).to.equal('data: [DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)));
      expect(chunks).to.have.length(1 + 3 + 1 + 1); // role, content, finish, usage
      for (const c of chunks) expect(c.x_sent_at).to.be.closeTo(performance.timeOrigin + performance.now(), 5000);
      expect(chunks[0].choices[0].delta.role).to.equal('assistant');
      expect(chunks.at(-2).choices[0].finish_reason).to.equal('stop');
      expect(chunks.at(-1).choices).to.deep.equal([]);
      expect(chunks.at(-1).usage.total_tokens).to.be.above(0);
    } finally {
      await timed.close();
    }
  });
});
