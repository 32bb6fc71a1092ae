/**
 * A streaming client for `GET /v1/sessions/:id/events`, in SSE or NDJSON, that parses
 * events as they arrive and can be cut off mid-stream like a dropped connection.
 */
import { api } from './harness.js';

export interface StreamedEvent {
  id: number;
  type: string;
  session_id: string;
  task_id: string | null;
  agent_id: string | null;
  plan_id: string | null;
  ts: string;
  data: any;
}

export interface EventsClient {
  events: StreamedEvent[];
  heartbeats: number;
  /** SSE `id:` lines as received (they must equal the JSON ids). */
  sseIds: number[];
  status: number;
  /** Resolves with the first event (from now or already received) matching `predicate`. */
  waitFor(predicate: (e: StreamedEvent) => boolean, timeoutMs?: number): Promise<StreamedEvent>;
  close(): void;
  closed: Promise<void>;
}

export interface OpenOptions {
  format: 'sse' | 'ndjson';
  token: string;
  lastEventId?: number;
  /** Send the id as ?last_event_id= instead of the Last-Event-ID header. */
  viaQuery?: boolean;
  base?: string;
}

export async function openEvents(sessionId: string, options: OpenOptions): Promise<EventsClient> {
  const controller = new AbortController();
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.token}`,
    accept: options.format === 'sse' ? 'text/event-stream' : 'application/x-ndjson',
  };
  let query = '';
  if (options.lastEventId !== undefined) {
    if (options.viaQuery) query = `?last_event_id=${options.lastEventId}`;
    else headers['last-event-id'] = String(options.lastEventId);
  }
  const res = await fetch(`${options.base ?? api()}/v1/sessions/${sessionId}/events${query}`, { headers, signal: controller.signal });
  const waiters = new Set<{ predicate: (e: StreamedEvent) => boolean; resolve: (e: StreamedEvent) => void }>();
  const client: EventsClient = {
    events: [],
    heartbeats: 0,
    sseIds: [],
    status: res.status,
    waitFor(predicate, timeoutMs = 15_000) {
      const found = client.events.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve: (e: StreamedEvent) => (clearTimeout(timer), resolve(e)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching event within ${timeoutMs} ms; got: ${client.events.map((e) => e.type).join(', ')}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close: () => controller.abort(),
    closed: Promise.resolve(),
  };
  const push = (event: StreamedEvent) => {
    client.events.push(event);
    for (const w of [...waiters]) {
      if (w.predicate(event)) {
        waiters.delete(w);
        w.resolve(event);
      }
    }
  };
  if (!res.ok || !res.body) {
    await res.text().catch(() => {});
    return client;
  }
  client.closed = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        if (options.format === 'ndjson') {
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (!line.trim()) continue;
            const parsed = JSON.parse(line);
            if (parsed.type === 'heartbeat') client.heartbeats += 1;
            else push(parsed);
          }
        } else {
          let sep: number;
          while ((sep = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, sep);
            buffer = buffer.slice(sep + 2);
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith(': heartbeat')) client.heartbeats += 1;
              else if (line.startsWith('id: ')) client.sseIds.push(Number(line.slice(4)));
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data) push(JSON.parse(data));
          }
        }
      }
    } catch {
      // aborted by close(), or the server ended the stream
    }
  })();
  return client;
}
