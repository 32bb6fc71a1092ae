import { Redis, type RedisOptions } from 'ioredis';

/**
 * Connections for commands (`command`), for BullMQ workers' blocking reads (`blocking`,
 * which needs maxRetriesPerRequest: null) and for pub/sub (`subscriber`).
 */
export function createRedis(url: string, role: 'command' | 'blocking' | 'subscriber', extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    connectionName: `cadre:${role}:${process.pid}`,
    maxRetriesPerRequest: role === 'command' ? 2 : null,
    enableOfflineQueue: role !== 'command',
    // Reconnect forever with capped backoff: Redis restarts must not take the process down.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    lazyConnect: false,
    ...extra,
  });
}

export function redisIsReady(redis: Redis): boolean {
  return redis.status === 'ready';
}
