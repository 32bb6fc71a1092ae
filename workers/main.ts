import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../src/config.js';
import { Agent } from '../src/agents/agent.entity.js';
import { createOrm } from '../src/db/orm.js';
import { EventLog } from '../src/events/event-log.js';
import { AgentQueues } from '../src/jobs/agent-queues.js';
import { activityKeys } from '../src/jobs/queue-names.js';
import type { JobPayloads } from '../src/jobs/job-types.js';
import { LlmClients } from '../src/llm/llm-client.js';
import { createRedis } from '../src/redis.js';
import { TaskDispatcher } from '../src/tasks/task-dispatcher.js';
import { TaskRunner } from '../src/tasks/task-runner.js';
import { TaskAnnouncer } from '../src/tasks/task-announcer.js';
import { ConsumerManager } from './consumer-manager.js';
import { assertHandlersComplete, jobHandlers } from './job-handlers.js';
import { Sweeper } from './sweeper.js';

export interface WorkerHandle {
  consumers: ConsumerManager;
  runner: TaskRunner;
  sweeper: Sweeper;
  stop(): Promise<void>;
}

/** Builds and starts a worker process's services. */
export async function startWorker(config: Config, logger: Logger): Promise<WorkerHandle> {
  const orm = await createOrm({ databaseUrl: config.databaseUrl, logger, poolMax: 20 });
  const redis = createRedis(config.redisUrl, 'command');
  const connection = createRedis(config.redisUrl, 'blocking');
  const subscriber = createRedis(config.redisUrl, 'subscriber');
  for (const [name, client] of Object.entries({ redis, connection, subscriber })) {
    client.on('error', (err) => logger.warn({ err: err.message, connection: name }, 'redis connection error'));
  }
  const queues = new AgentQueues({ redis, redisPrefix: config.redisPrefix });
  const events = new EventLog(redis, { redisPrefix: config.redisPrefix, maxLength: config.eventLogMaxLength, ttlSeconds: config.eventLogTtlSeconds });
  const dispatcher = new TaskDispatcher(queues, logger);
  const announcer = new TaskAnnouncer(events, dispatcher, logger);
  const runner = new TaskRunner({ config, orm, llm: new LlmClients(config, { chunkDelayMs: config.offlineChunkDelayMs }), events, announcer, logger });
  const handlers = jobHandlers(runner);
  assertHandlersComplete(handlers);

  const consumers = new ConsumerManager({
    config,
    logger,
    connection,
    redis,
    subscriber,
    queues,
    handlers,
    onLockLost: (taskId) => runner.abort(taskId, 'lock_lost'),
    agentLimit: async (agentId) => (await orm.em.fork().findOne(Agent, { id: agentId }))?.concurrencyLimit ?? null,
    onExhausted: async (job: Job<JobPayloads['agent.run']>, err) => {
      await announcer.fail(orm.em.fork(), job.data.taskId, { code: 'internal_error', message: err?.message ?? 'the job failed' });
    },
  });
  const cancelChannel = activityKeys(config.redisPrefix).cancelChannel;
  subscriber.on('message', (channel: string, taskId: string) => {
    if (channel === cancelChannel && runner.abort(taskId, 'cancelled')) logger.info({ task_id: taskId }, 'task cancelled while running');
  });
  await subscriber.subscribe(cancelChannel);
  await consumers.start();
  const sweeper = new Sweeper({
    orm,
    redis,
    queues,
    dispatcher,
    announcer,
    logger,
    redisPrefix: config.redisPrefix,
    intervalMs: config.sweepIntervalMs,
    graceMs: Math.max(5000, config.workerLockMs * 2),
  });
  sweeper.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      sweeper.stop();
      await consumers.drain(config.shutdownGraceMs);
      runner.stop();
      await queues.close();
      subscriber.disconnect();
      connection.disconnect();
      redis.disconnect();
      await orm.close();
    })());
  return { consumers, runner, sweeper, stop };
}

export async function runWorker(config: Config, logger: Logger): Promise<void> {
  const handle = await startWorker(config, logger);
  logger.info('worker ready');
  if (process.send) process.send({ type: 'ready' });
  const stop = async (signal: string) => {
    logger.info({ signal, running: handle.runner.running }, 'worker draining');
    await handle.stop();
    logger.info('worker stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
