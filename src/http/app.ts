import Koa from 'koa';
import cors from '@koa/cors';
import helmet from 'koa-helmet';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { authenticate } from '../auth/auth.middleware.js';
import { authRoutes } from '../auth/auth.routes.js';
import { agentRoutes } from '../agents/agent.routes.js';
import { AgentService } from '../agents/agent.service.js';
import { sessionRoutes } from '../sessions/session.routes.js';
import { healthRoutes } from '../health/health.routes.js';
import type { AgentQueues } from '../jobs/agent-queues.js';
import { ApiRouter } from './api-router.js';
import { docsRouter } from './docs.routes.js';
import { accessLog, errorHandler, jsonBody, requestContext } from './middleware.js';

export interface AppDeps {
  config: Config;
  logger: Logger;
  orm: MikroORM;
  redis: Redis;
  queues: AgentQueues;
  /** Extra route groups (execution, events, admin) mounted by the web process. */
  extend?: (api: ApiRouter, app: Koa) => void;
}

export function createApp(deps: AppDeps): Koa {
  const { config, logger, orm, redis, queues } = deps;
  const app = new Koa({ proxy: config.nodeEnv === 'production' });
  app.silent = true; // errors are logged by accessLog/errorHandler with their request id

  app.use(requestContext(logger));
  app.use(accessLog());
  app.use(errorHandler());
  app.use(
    helmet({
      contentSecurityPolicy: { directives: { 'script-src': ["'self'"], 'style-src': ["'self'", "'unsafe-inline'"] } },
    }) as Koa.Middleware,
  );
  if (config.corsOrigins.length) {
    const allowed = new Set(config.corsOrigins);
    app.use(
      cors({
        origin: (ctx) => {
          const origin = ctx.get('Origin');
          return allowed.has('*') || allowed.has(origin) ? origin : '';
        },
        exposeHeaders: ['X-Request-Id', 'Retry-After'],
        allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'Last-Event-ID'],
        maxAge: 600,
      }),
    );
  }
  app.use(async (ctx, next) => {
    ctx.state.em = orm.em.fork(); // a fresh identity map per request
    await next();
  });
  app.use(jsonBody(config.bodyLimitBytes));

  const api = new ApiRouter(authenticate(config));
  healthRoutes(api, { orm, redis });
  authRoutes(api, config);
  agentRoutes(api, new AgentService(queues));
  sessionRoutes(api);
  deps.extend?.(api, app);

  const docs = docsRouter(config.publicUrl);
  app.use(docs.routes());
  app.use(api.router.routes());
  app.use(api.router.allowedMethods({ throw: true }));
  return app;
}
