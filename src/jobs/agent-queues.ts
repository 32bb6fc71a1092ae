import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobName, JobPayloads } from './job-types.js';
import { activityKeys, agentQueueName, bullPrefix } from './queue-names.js';

export interface AgentQueuesOptions {
  redis: Redis;
  redisPrefix: string;
  /** Attempts per job; retries only cover crashes and infrastructure errors. Default 5. */
  attempts?: number;
}

/**
 * Producer side of the per-agent queues. Queue objects are cheap (they share `redis`),
 * so one per agent is cached for the life of the process.
 */
export class AgentQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly keys: ReturnType<typeof activityKeys>;
  readonly prefix: string;

  constructor(private readonly options: AgentQueuesOptions) {
    this.keys = activityKeys(options.redisPrefix);
    this.prefix = bullPrefix(options.redisPrefix);
  }

  queue(agentId: string): Queue {
    let queue = this.queues.get(agentId);
    if (!queue) {
      queue = new Queue(agentQueueName(agentId), { connection: this.options.redis, prefix: this.prefix });
      queue.on('error', () => {}); // surfaced through the caller's awaited commands
      this.queues.set(agentId, queue);
    }
    return queue;
  }

  jobOptions(jobId: string): JobsOptions {
    return {
      jobId,
      attempts: this.options.attempts ?? 5,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    };
  }

  /**
   * Idempotent: the job id is the task id, so a second enqueue of the same task is a no-op.
   * The agent is marked active (for workers' periodic scan) and announced (for an immediate
   * consumer) in the same round trip: commands on one connection run in the order sent.
   */
  async enqueue<N extends JobName>(agentId: string, name: N, payload: JobPayloads[N], jobId: string): Promise<void> {
    await Promise.all([this.announce(agentId), this.queue(agentId).add(name, payload, this.jobOptions(jobId))]);
  }

  /** Marks the agent as having work and tells the workers (the sweeper's repair). */
  async announce(agentId: string): Promise<void> {
    await this.options.redis.multi().sadd(this.keys.activeAgents, agentId).publish(this.keys.activityChannel, agentId).exec();
  }

  /** The agent's concurrency_limit, enforced by BullMQ across every worker process. */
  async setConcurrency(agentId: string, limit: number): Promise<void> {
    await this.queue(agentId).setGlobalConcurrency(limit);
  }

  /** Removes a job that has not started. Returns false when it is running (or gone). */
  async removeWaiting(agentId: string, jobId: string): Promise<boolean> {
    const job = await this.queue(agentId).getJob(jobId);
    if (!job) return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // locked by a worker: it is running
    }
  }

  async dropAgent(agentId: string): Promise<void> {
    const queue = this.queue(agentId);
    await queue.obliterate({ force: true }).catch(() => {});
    await this.options.redis.srem(this.keys.activeAgents, agentId);
    this.queues.delete(agentId);
    await queue.close();
  }

  async publishCancel(taskId: string): Promise<void> {
    await this.options.redis.publish(this.keys.cancelChannel, taskId);
  }

  /** Stops a task's job: a waiting one is removed, a running one's worker aborts it. */
  async stopTask(task: { id: string; agentId: string | null | undefined; status: string }): Promise<void> {
    if (task.status === 'queued' && task.agentId) await this.removeWaiting(task.agentId, task.id);
    else await this.publishCancel(task.id);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
