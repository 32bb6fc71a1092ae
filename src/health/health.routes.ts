import type { MikroORM } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import type { ApiRouter } from '../http/api-router.js';

async function check(name: string, probe: () => Promise<unknown>, timeoutMs = 2000) {
  const start = performance.now();
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    return { name, status: 'up' as const, latency_ms: Math.round(performance.now() - start) };
  } catch (err) {
    return { name, status: 'down' as const, error: (err as Error).message };
  }
}

export function healthRoutes(api: ApiRouter, deps: { orm: MikroORM; redis: Redis }): void {
  api.route(
    {
      method: 'get',
      path: '/health',
      tag: 'operations',
      summary: 'Liveness: the process is up',
      public: true,
      responses: { 200: { description: 'alive', schema: { type: 'object', properties: { status: { const: 'ok' } } } } },
    },
    async (ctx) => {
      ctx.body = { status: 'ok' };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/ready',
      tag: 'operations',
      summary: 'Readiness: PostgreSQL and Redis answer (503 naming what is down)',
      public: true,
      responses: {
        200: { description: 'ready', schema: { type: 'object' } },
        503: { description: 'a dependency is down', schema: { type: 'object' } },
      },
    },
    async (ctx) => {
      const checks = await Promise.all([
        check('postgres', () => deps.orm.em.getConnection().execute('select 1')),
        check('redis', () => deps.redis.ping()),
      ]);
      const down = checks.filter((c) => c.status === 'down').map((c) => c.name);
      ctx.status = down.length ? 503 : 200;
      ctx.body = {
        status: down.length ? 'unavailable' : 'ready',
        ...(down.length ? { down } : {}),
        checks: Object.fromEntries(checks.map(({ name, ...rest }) => [name, rest])),
      };
    },
  );
}
