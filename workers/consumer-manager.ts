import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../src/config.js';
import type { AgentQueues } from '../src/jobs/agent-queues.js';
import { activityKeys, agentQueueName, bullPrefix } from '../src/jobs/queue-names.js';
import type { JobHandlers } from './job-handlers.js';

interface Consumer {
  worker: Worker;
  active: number;
  lastActivity: number;
}

export interface ConsumerManagerDeps {
  config: Config;
  logger: Logger;
  /** Shared connection for the workers' commands (maxRetriesPerRequest: null); each Worker adds its own blocking one. */
  connection: Redis;
  /** Command connection (SMEMBERS, SREM). */
  redis: Redis;
  /** Pub/sub connection for queue activity. */
  subscriber: Redis;
  queues: AgentQueues;
  handlers: JobHandlers;
  /** Looks up an agent's concurrency limit (null when the agent no longer exists). */
  agentLimit: (agentId: string) => Promise<number | null>;
  /** Called with a job id whose lock this process lost. */
  onLockLost: (jobId: string) => void;
  /** Called when a job has used all its attempts. */
  onExhausted: (job: Job, err: Error) => Promise<void>;
}

/**
 * Opens a BullMQ Worker for an agent queue when it gets work, and closes it once the queue
 * has been idle for a while, so idle agents hold no connections.
 */
export class ConsumerManager {
  private readonly consumers = new Map<string, Consumer>();
  private readonly opening = new Map<string, Promise<void>>();
  private readonly keys: ReturnType<typeof activityKeys>;
  private readonly shutdown = new AbortController();
  private tick: NodeJS.Timeout | undefined;
  private draining = false;
  /** Workers closing in the background (an idle close that found a late job); drain awaits them. */
  private readonly closing = new Set<Promise<void>>();

  constructor(private readonly deps: ConsumerManagerDeps) {
    this.keys = activityKeys(deps.config.redisPrefix);
  }

  get size(): number {
    return this.consumers.size;
  }

  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }

  async start(): Promise<void> {
    const { subscriber } = this.deps;
    subscriber.on('message', (channel: string, agentId: string) => {
      if (channel === this.keys.activityChannel) this.touch(agentId);
    });
    await subscriber.subscribe(this.keys.activityChannel);
    await this.scan();
    this.tick = setInterval(() => void this.maintain(), 1000);
  }

  /** A job arrived for this agent: make sure this process consumes its queue. */
  touch(agentId: string): void {
    const consumer = this.consumers.get(agentId);
    if (consumer) {
      consumer.lastActivity = Date.now();
      return;
    }
    void this.open(agentId);
  }

  private async scan(): Promise<void> {
    const agentIds = await this.deps.redis.smembers(this.keys.activeAgents);
    for (const agentId of agentIds) if (!this.consumers.has(agentId)) await this.open(agentId);
  }

  private open(agentId: string): Promise<void> {
    if (this.draining) return Promise.resolve();
    let pending = this.opening.get(agentId);
    if (!pending) {
      pending = this.doOpen(agentId)
        .catch((err) => this.deps.logger.error({ err, agent_id: agentId }, 'could not open a consumer'))
        .finally(() => this.opening.delete(agentId));
      this.opening.set(agentId, pending);
    }
    return pending;
  }

  private async doOpen(agentId: string): Promise<void> {
    const { config, logger, connection, queues } = this.deps;
    if (this.consumers.has(agentId)) return;
    if (this.consumers.size >= config.workerMaxQueues && !(await this.evictIdle())) return; // the periodic scan retries
    const limit = await this.deps.agentLimit(agentId);
    if (limit === null) {
      await queues.dropAgent(agentId);
      return;
    }
    // Re-assert the limit: Redis may have lost the queue's meta, and the database is the truth.
    await queues.setConcurrency(agentId, limit);
    if (this.draining || this.consumers.has(agentId)) return; // shutdown began while we waited
    const consumer: Consumer = { worker: undefined as unknown as Worker, active: 0, lastActivity: Date.now() };
    const worker = new Worker(
      agentQueueName(agentId),
      async (job, token) => {
        const handler = (this.deps.handlers as Record<string, JobHandlers[keyof JobHandlers]>)[job.name];
        if (!handler) throw new UnrecoverableError(`no handler for job ${job.name}`);
        consumer.active += 1;
        consumer.lastActivity = Date.now();
        try {
          return await handler(job.data, { job, token, shutdown: this.shutdown.signal });
        } finally {
          consumer.active -= 1;
          consumer.lastActivity = Date.now();
        }
      },
      {
        connection,
        // Recorded on each job as processedBy, so operators (and tests) see which process ran it.
        name: `${hostname()}:${process.pid}`,
        prefix: bullPrefix(config.redisPrefix),
        // The agent's real limit is the queue's global concurrency; this only caps one process's share.
        concurrency: config.workerAgentConcurrency,
        lockDuration: config.workerLockMs,
        stalledInterval: config.workerStalledIntervalMs,
        maxStalledCount: 2,
        autorun: true,
      },
    );
    worker.on('error', (err) => logger.warn({ err: err.message, agent_id: agentId }, 'queue consumer error'));
    // A job whose lock could not be renewed will be run again elsewhere: stop this run, or two
    // attempts would stream into the same session at once.
    worker.on('lockRenewalFailed', (jobIds: string[]) => {
      logger.warn({ job_ids: jobIds, agent_id: agentId }, 'lost job locks; abandoning those runs');
      for (const id of jobIds) this.deps.onLockLost(id);
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      const attempts = job.opts.attempts ?? 1;
      if (err?.name === 'DelayedError') return;
      logger.warn({ err: err?.message, job_id: job.id, attempts_made: job.attemptsMade, attempts }, 'job failed');
      if (job.attemptsMade >= attempts || err instanceof UnrecoverableError) {
        void this.deps.onExhausted(job, err).catch((e) => logger.error({ err: e }, 'could not record a failed task'));
      }
    });
    consumer.worker = worker;
    this.consumers.set(agentId, consumer);
    logger.debug({ agent_id: agentId, consumers: this.consumers.size }, 'consumer opened');
  }

  private async isIdle(agentId: string): Promise<boolean> {
    const counts = await this.deps.queues.queue(agentId).getJobCounts('active', 'wait', 'delayed', 'prioritized', 'waiting-children');
    return Object.values(counts).every((n) => n === 0);
  }

  /** Stops consuming at once; a job that slipped in meanwhile finishes in the background. */
  private close(agentId: string): void {
    const consumer = this.consumers.get(agentId);
    if (!consumer) return;
    this.consumers.delete(agentId);
    const closed = consumer.worker.close().catch((err) => this.deps.logger.warn({ err, agent_id: agentId }, 'consumer close failed'));
    this.closing.add(closed);
    void closed.finally(() => this.closing.delete(closed));
    this.deps.logger.debug({ agent_id: agentId, consumers: this.consumers.size }, 'consumer closed');
  }

  /** Frees a slot by closing the longest-idle consumer with an empty queue. */
  private async evictIdle(): Promise<boolean> {
    const candidates = [...this.consumers.entries()].filter(([, c]) => c.active === 0).sort((a, b) => a[1].lastActivity - b[1].lastActivity);
    for (const [agentId] of candidates) {
      if (await this.isIdle(agentId)) {
        this.close(agentId);
        return true;
      }
    }
    return false;
  }

  private maintaining = false;
  private async maintain(): Promise<void> {
    if (this.maintaining || this.draining) return;
    this.maintaining = true;
    try {
      const idleMs = this.deps.config.workerIdleCloseMs;
      for (const [agentId, consumer] of [...this.consumers.entries()]) {
        if (consumer.active > 0 || Date.now() - consumer.lastActivity < idleMs) continue;
        if (await this.isIdle(agentId)) {
          this.close(agentId);
          // Only forget the agent when no job slipped in meanwhile (the producer re-adds it and notifies).
          if (await this.isIdle(agentId)) await this.deps.redis.srem(this.keys.activeAgents, agentId);
          else void this.open(agentId);
        } else {
          consumer.lastActivity = Date.now();
        }
      }
      await this.scan();
    } catch (err) {
      this.deps.logger.warn({ err }, 'consumer maintenance failed');
    } finally {
      this.maintaining = false;
    }
  }

  /**
   * Stops taking jobs and lets running ones finish; after `graceMs` the rest are handed
   * back to their queues for another worker.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.tick);
    await this.deps.subscriber.unsubscribe(this.keys.activityChannel).catch(() => {});
    const timer = setTimeout(() => this.shutdown.abort('shutdown'), graceMs);
    await Promise.all([...[...this.consumers.values()].map((c) => c.worker.close()), ...this.closing]);
    clearTimeout(timer);
    this.consumers.clear();
  }
}
