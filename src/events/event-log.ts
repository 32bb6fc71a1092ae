import type { Redis } from 'ioredis';
import type { CadreEvent, EventInput, EventType } from './event-types.js';
import { eventKeys } from './event-keys.js';

// Assigns the next id, appends to the bounded log, refreshes its TTL and publishes, atomically:
// a subscriber can never see event N+1 before N is in the log. The JSON is assembled here by
// concatenation so Lua never re-encodes (cjson would mangle empty arrays and key order).
const APPEND = `
local id = redis.call('INCR', KEYS[1])
local evt = '{"id":' .. id .. ',' .. ARGV[1]
redis.call('ZADD', KEYS[2], id, evt)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], evt)
return id
`;

export interface EventLogOptions {
  redisPrefix: string;
  /** Events kept per session for replay. Default from EVENT_LOG_MAX_LENGTH. */
  maxLength: number;
  /** Seconds an idle session's log is kept. Default from EVENT_LOG_TTL_SECONDS. */
  ttlSeconds: number;
}

/** What defineCommand adds to a client or pipeline (ioredis cannot type it for us). */
type WithAppend<R> = R & { cadreAppendEvent(...args: Array<string | number>): R extends Redis ? Promise<number> : R };

/** Appends events to a session's log and publishes them for live delivery. */
export class EventLog {
  constructor(
    private readonly redis: Redis,
    private readonly options: EventLogOptions,
  ) {
    if (!(redis as any).cadreAppendEvent) redis.defineCommand('cadreAppendEvent', { numberOfKeys: 2, lua: APPEND });
    // Load it now, so the first append is never a NOSCRIPT round trip that another command overtakes.
    redis.script('LOAD', APPEND).catch(() => {});
  }

  private body<T extends EventType>(event: EventInput<T>): string {
    const json = JSON.stringify({
      type: event.type,
      session_id: event.session_id,
      task_id: event.task_id ?? null,
      plan_id: event.plan_id ?? null,
      agent_id: event.agent_id ?? null,
      ts: new Date().toISOString(),
      data: event.data,
    });
    return json.slice(1); // the script prepends `{"id":N,`
  }

  async append<T extends EventType>(event: EventInput<T>): Promise<number> {
    const keys = eventKeys(this.options.redisPrefix, event.session_id);
    // The counter outlives the log (ids must never restart while clients may hold an old one).
    const seqTtl = this.options.ttlSeconds * 30;
    return (this.redis as WithAppend<Redis>).cadreAppendEvent(keys.seq, keys.log, this.body(event), this.options.maxLength, this.options.ttlSeconds, seqTtl, keys.channel);
  }

  /** Several events in one round trip, in order. */
  async appendMany(events: EventInput[]): Promise<void> {
    if (events.length === 1) {
      await this.append(events[0]!);
      return;
    }
    const pipeline = this.redis.pipeline() as WithAppend<ReturnType<Redis['pipeline']>>;
    const seqTtl = this.options.ttlSeconds * 30;
    for (const event of events) {
      const keys = eventKeys(this.options.redisPrefix, event.session_id);
      pipeline.cadreAppendEvent(keys.seq, keys.log, this.body(event), this.options.maxLength, this.options.ttlSeconds, seqTtl, keys.channel);
    }
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** Retained events with id > afterId, oldest first, as their raw JSON. */
  async after(sessionId: string, afterId: number, limit = 100_000): Promise<string[]> {
    const { log } = eventKeys(this.options.redisPrefix, sessionId);
    return this.redis.zrangebyscore(log, `(${afterId}`, '+inf', 'LIMIT', 0, limit);
  }

  async lastId(sessionId: string): Promise<number> {
    return Number((await this.redis.get(eventKeys(this.options.redisPrefix, sessionId).seq)) ?? 0);
  }

  async drop(sessionId: string): Promise<void> {
    const keys = eventKeys(this.options.redisPrefix, sessionId);
    await this.redis.del(keys.seq, keys.log);
  }
}

/** Cheap id extraction from the JSON the script builds (`{"id":N,...`). */
export function eventIdOf(raw: string): number {
  const comma = raw.indexOf(',', 6);
  return Number(raw.slice(6, comma));
}

export type { CadreEvent };
