import { PassThrough } from 'node:stream';
import type { EventHub } from './event-hub.js';
import { eventIdOf, type EventLog } from './event-log.js';
import { ServiceUnavailableError } from '../errors.js';

export type StreamFormat = 'sse' | 'ndjson';

export interface OpenStreamOptions {
  sessionId: string;
  format: StreamFormat;
  /** Replay retained events after this id first; undefined means live events only. */
  lastEventId: number | undefined;
  heartbeatMs: number;
}

function typeOf(raw: string): string {
  const m = /"type":"([^"]+)"/.exec(raw);
  return m ? m[1]! : 'message';
}

/** A client this far behind is cut off; it resumes with Last-Event-ID when it catches up. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/**
 * A session's event stream: subscribe first (buffering), then replay the log after the
 * client's last id, then drain the buffer and go live, dropping any id already sent.
 * That ordering is what makes resumption free of gaps and duplicates.
 */
export class SessionStreams {
  private readonly open = new Set<PassThrough>();
  private closing = false;

  constructor(
    private readonly hub: EventHub,
    private readonly log: EventLog,
  ) {
    hub.onConnectionLost(() => this.endAll());
  }

  async connect(options: OpenStreamOptions): Promise<PassThrough> {
    if (this.closing) throw new ServiceUnavailableError('shutting_down', 'this server is shutting down; reconnect');
    const out = new PassThrough();
    const send = (text: string) => {
      if (out.writableEnded || out.destroyed) return;
      out.write(text);
      if (out.writableLength > MAX_BUFFERED_BYTES) out.destroy();
    };
    let lastSent = options.lastEventId ?? -1;
    let live = false;
    const buffered: Array<[string, number]> = [];
    const write = (raw: string, id: number) => {
      if (id <= lastSent) return;
      lastSent = id;
      send(options.format === 'sse' ? `id: ${id}\nevent: ${typeOf(raw)}\ndata: ${raw}\n\n` : `${raw}\n`);
    };
    const unsubscribe = await this.hub.subscribe(options.sessionId, (raw, id) => {
      if (live) write(raw, id);
      else buffered.push([raw, id]);
    });
    const heartbeat = setInterval(() => {
      send(options.format === 'sse' ? `: heartbeat ${Date.now()}\n\n` : '{"type":"heartbeat"}\n');
    }, options.heartbeatMs);
    const cleanup = () => {
      clearInterval(heartbeat);
      unsubscribe();
      this.open.delete(out);
    };
    out.once('close', cleanup);
    this.open.add(out);

    if (options.format === 'sse') send(`retry: 2000\n: connected\n\n`);
    try {
      if (options.lastEventId !== undefined) {
        const past = await this.log.after(options.sessionId, options.lastEventId);
        if (options.lastEventId > 0 && past.length === 0) {
          // The counter restarted (Redis was flushed): the client's id belongs to an older log.
          const current = await this.log.lastId(options.sessionId);
          if (current < options.lastEventId) {
            lastSent = -1;
            for (const raw of await this.log.after(options.sessionId, 0)) write(raw, eventIdOf(raw));
          }
        }
        for (const raw of past) write(raw, eventIdOf(raw));
      }
      for (const [raw, id] of buffered) write(raw, id);
      buffered.length = 0;
      live = true;
    } catch (err) {
      out.destroy(err as Error);
    }
    return out;
  }

  /** Ends every stream; clients reconnect with Last-Event-ID and miss nothing. */
  endAll(): void {
    for (const out of this.open) out.end();
    this.open.clear();
  }

  /** Graceful shutdown: end every stream and accept no new ones. */
  closeAll(): void {
    this.closing = true;
    this.endAll();
  }
}
