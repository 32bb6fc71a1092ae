import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createOrm } from './db/orm.js';
import { createApp } from './http/app.js';
import { AgentQueues } from './jobs/agent-queues.js';
import { createRedis } from './redis.js';

export interface WebHandle {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Builds and starts the API process. Tests call this too, in-process. */
export async function startWeb(config: Config, logger: Logger): Promise<WebHandle> {
  const orm = await createOrm({ databaseUrl: config.databaseUrl, logger });
  const redis = createRedis(config.redisUrl, 'command');
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const subscriber = createRedis(config.redisUrl, 'subscriber');
  subscriber.on('error', (err) => logger.warn({ err: err.message }, 'redis subscriber error'));
  const queues = new AgentQueues({ redis, redisPrefix: config.redisPrefix });
  const { app, streams, hub } = createApp({ config, logger, orm, redis, subscriber, queues });
  const server = createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      streams.closeAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), Math.min(config.shutdownGraceMs, 5000)).unref();
      });
      hub.close();
      await queues.close();
      redis.disconnect();
      await orm.close();
    })());
  return { server, url, close };
}

export async function runWeb(config: Config, logger: Logger): Promise<void> {
  const web = await startWeb(config, logger);
  const base = config.publicUrl.startsWith(`http://${config.host}:${config.port}`) ? web.url : config.publicUrl;
  logger.info({ url: base }, 'api listening');
  process.stdout.write(
    [
      '',
      `  Cadre API    ${base}`,
      `  API docs     ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
      `  Get a token  curl -s -X POST ${base}/v1/auth/register -H 'content-type: application/json' \\`,
      `                 -d '{"email":"you@example.com","password":"correct horse battery"}'`,
      '',
    ].join('\n') + '\n',
  );
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down api');
    await web.close();
    logger.info('api stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
