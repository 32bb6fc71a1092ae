import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { eventChannelPrefix } from './event-keys.js';
import { eventIdOf } from './event-log.js';

export type RawListener = (raw: string, id: number) => void;

/**
 * One Redis subscriber connection per API process, fanned out to the local streams.
 * Channels are subscribed while at least one local stream watches the session.
 */
export class EventHub {
  private readonly listeners = new Map<string, Set<RawListener>>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly prefix: string;
  private closed = false;
  private readonly lostHandlers: Array<() => void> = [];

  constructor(
    private readonly subscriber: Redis,
    redisPrefix: string,
    private readonly logger: Logger,
  ) {
    this.prefix = eventChannelPrefix(redisPrefix);
    // Pub/sub keeps nothing for a disconnected subscriber: whatever is published until ioredis
    // has resubscribed is gone, so the streams must end and resume from the log.
    subscriber.on('close', () => {
      if (this.closed) return;
      this.logger.warn('event subscriber connection lost; ending streams so clients resume');
      for (const handler of this.lostHandlers) handler();
    });
    subscriber.on('message', (channel: string, raw: string) => {
      const set = this.listeners.get(channel.slice(this.prefix.length));
      if (!set) return;
      const id = eventIdOf(raw);
      for (const listener of set) {
        try {
          listener(raw, id);
        } catch (err) {
          this.logger.warn({ err }, 'event listener failed');
        }
      }
    });
  }

  /** Resolves once Redis confirmed the subscription, so nothing published afterwards is missed. */
  async subscribe(sessionId: string, listener: RawListener): Promise<() => void> {
    if (this.closed) throw new Error('event hub is closed');
    let set = this.listeners.get(sessionId);
    const channel = this.prefix + sessionId;
    if (!set) {
      set = new Set();
      this.listeners.set(sessionId, set);
      const p = this.subscriber.subscribe(channel).finally(() => this.pending.delete(sessionId));
      this.pending.set(sessionId, p);
    }
    set.add(listener);
    try {
      await this.pending.get(sessionId);
    } catch (err) {
      this.remove(sessionId, listener);
      throw err;
    }
    return () => this.remove(sessionId, listener);
  }

  private remove(sessionId: string, listener: RawListener): void {
    const set = this.listeners.get(sessionId);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) {
      this.listeners.delete(sessionId);
      if (!this.closed) this.subscriber.unsubscribe(this.prefix + sessionId).catch(() => {});
    }
  }

  onConnectionLost(handler: () => void): void {
    this.lostHandlers.push(handler);
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.subscriber.disconnect();
  }
}
