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
import { messageRoutes } from '../messages/message.routes.js';
import { MessageService } from '../messages/message.service.js';
import { taskRoutes } from '../tasks/task.routes.js';
import { TaskDispatcher } from '../tasks/task-dispatcher.js';
import { TaskAnnouncer } from '../tasks/task-announcer.js';
import { Task } from '../tasks/task.entity.js';
import { eventRoutes } from '../events/event.routes.js';
import { EventHub } from '../events/event-hub.js';
import { EventLog } from '../events/event-log.js';
import { SessionStreams } from '../events/event-stream.js';
import { BOARD_PATH, queueBoard } from '../admin/queue-board.js';
import type { AgentQueues } from '../jobs/agent-queues.js';
import { ApiRouter } from './api-router.js';
import { docsRouter } from './docs.routes.js';
import { accessLog, errorHandler, jsonBody, requestContext } from './middleware.js';

export interface AppDeps {
  config: Config;
  logger: Logger;
  orm: MikroORM;
  redis: Redis;
  /** Dedicated pub/sub connection for live events (one per API process). */
  subscriber: Redis;
  queues: AgentQueues;
}

export interface CadreApp {
  app: Koa;
  streams: SessionStreams;
  hub: EventHub;
}

export function createApp(deps: AppDeps): CadreApp {
  const { config, logger, orm, redis, queues } = deps;
  const app = new Koa({ proxy: config.nodeEnv === 'production' });
  app.silent = true; // errors are logged by accessLog/errorHandler with their request id

  const events = new EventLog(redis, { redisPrefix: config.redisPrefix, maxLength: config.eventLogMaxLength, ttlSeconds: config.eventLogTtlSeconds });
  const hub = new EventHub(deps.subscriber, config.redisPrefix, logger);
  const streams = new SessionStreams(hub, events);
  const dispatcher = new TaskDispatcher(queues, logger);
  const announcer = new TaskAnnouncer(events, dispatcher, logger);

  app.use(requestContext(logger));
  app.use(accessLog());
  app.use(errorHandler());
  const strict = helmet({ contentSecurityPolicy: { directives: { 'script-src': ["'self'"], 'style-src': ["'self'", "'unsafe-inline'"] } } }) as Koa.Middleware;
  // Bull Board's UI ships inline bootstrapping, so its pages get the headers without the CSP.
  const board = helmet({ contentSecurityPolicy: false }) as Koa.Middleware;
  app.use((ctx, next) => (ctx.path.startsWith(BOARD_PATH) ? board(ctx, next) : strict(ctx, next)));
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
  app.use(queueBoard({ config, orm, queues }));
  app.use(jsonBody(config.bodyLimitBytes));

  const api = new ApiRouter(authenticate(config));
  healthRoutes(api, { orm, redis });
  authRoutes(api, config);
  agentRoutes(api, new AgentService(queues, announcer));
  sessionRoutes(api, {
    // Stop whatever still runs for a deleted session; its rows are already gone.
    beforeDelete: async (em, sessionId) => {
      const running = await em.find(Task, { sessionId, status: { $in: ['running', 'awaiting_approval', 'queued'] } });
      return async () => {
        for (const t of running) await queues.stopTask(t);
        await events.drop(sessionId);
      };
    },
  });
  messageRoutes(api, new MessageService({ redis, events, dispatcher, logger }));
  taskRoutes(api, { queues, announcer, logger });
  eventRoutes(api, streams, config.heartbeatMs);

  const docs = docsRouter(config.publicUrl);
  app.use(docs.routes());
  app.use(api.router.routes());
  app.use(api.router.allowedMethods());
  return { app, streams, hub };
}
