import { PassThrough } from 'node:stream';
import type { EventHub } from './event-hub.js';
import { eventIdOf, type EventLog } from './event-log.js';

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

/**
 * A session's event stream: subscribe first (buffering), then replay the log after the
 * client's last id, then drain the buffer and go live, dropping any id already sent.
 * That ordering is what makes resumption free of gaps and duplicates.
 */
export class SessionStreams {
  private readonly open = new Set<PassThrough>();

  constructor(
    private readonly hub: EventHub,
    private readonly log: EventLog,
  ) {}

  async connect(options: OpenStreamOptions): Promise<PassThrough> {
    const out = new PassThrough();
    let lastSent = options.lastEventId ?? -1;
    let live = false;
    const buffered: Array<[string, number]> = [];
    const write = (raw: string, id: number) => {
      if (id <= lastSent) return;
      lastSent = id;
      out.write(options.format === 'sse' ? `id: ${id}\nevent: ${typeOf(raw)}\ndata: ${raw}\n\n` : `${raw}\n`);
    };
    const unsubscribe = await this.hub.subscribe(options.sessionId, (raw, id) => {
      if (live) write(raw, id);
      else buffered.push([raw, id]);
    });
    const heartbeat = setInterval(() => {
      out.write(options.format === 'sse' ? `: heartbeat ${Date.now()}\n\n` : '{"type":"heartbeat"}\n');
    }, options.heartbeatMs);
    const cleanup = () => {
      clearInterval(heartbeat);
      unsubscribe();
      this.open.delete(out);
    };
    out.once('close', cleanup);
    this.open.add(out);

    if (options.format === 'sse') out.write(`retry: 2000\n: connected\n\n`);
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

  get size(): number {
    return this.open.size;
  }

  /** Graceful shutdown: end every stream so clients reconnect elsewhere with Last-Event-ID. */
  closeAll(): void {
    for (const out of this.open) out.end();
    this.open.clear();
  }
}
