import type { MikroORM } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentQueues } from '../src/jobs/agent-queues.js';
import type { TaskDispatcher } from '../src/tasks/task-dispatcher.js';
import type { TaskRunner } from '../src/tasks/task-runner.js';

interface HeadRow {
  id: string;
  session_id: string;
  agent_id: string | null;
  status: string;
  age_ms: number;
}

/**
 * PostgreSQL is the truth, Redis may forget. Periodically (one worker at a time) find each
 * session's head task and make sure a job exists for it: this recovers tasks whose enqueue
 * failed after commit, and work lost with a Redis restart.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private readonly lockKey: string;

  constructor(
    private readonly deps: {
      orm: MikroORM;
      redis: Redis;
      queues: AgentQueues;
      dispatcher: TaskDispatcher;
      runner: TaskRunner;
      logger: Logger;
      redisPrefix: string;
      intervalMs: number;
      /** A queued task younger than this is still being enqueued by the API. */
      graceMs: number;
    },
  ) {
    this.lockKey = `${deps.redisPrefix}:sweeper-lock`;
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep().catch((err) => this.deps.logger.warn({ err }, 'sweep failed')), this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async sweep(): Promise<number> {
    const { orm, redis, queues, dispatcher, intervalMs, graceMs, logger } = this.deps;
    const got = await redis.set(this.lockKey, String(process.pid), 'PX', Math.max(intervalMs - 100, 500), 'NX');
    if (!got) return 0;
    const em = orm.em.fork();
    const heads = await em.execute<HeadRow[]>(
      `select distinct on (session_id) id, session_id, agent_id, status,
              (extract(epoch from (now() - updated_at)) * 1000)::int as age_ms
       from tasks where status in ('queued', 'running', 'awaiting_approval')
       order by session_id, created_at, id`,
    );
    let repaired = 0;
    for (const head of heads) {
      if (!head.agent_id || head.status === 'awaiting_approval' || head.age_ms < graceMs) continue;
      const job = await queues.queue(head.agent_id).getJob(head.id);
      const state = job ? await job.getState() : 'missing';
      if (state === 'failed') {
        await this.deps.runner.fail(em, { id: head.id, sessionId: head.session_id, agentId: head.agent_id }, {
          code: 'internal_error',
          message: job?.failedReason || 'the job failed',
        });
        repaired += 1;
      } else if (state === 'missing' || state === 'unknown' || state === 'completed') {
        if (job && state === 'completed') await job.remove().catch(() => {});
        await dispatcher.enqueue({ id: head.id, sessionId: head.session_id, agentId: head.agent_id });
        repaired += 1;
      }
    }
    if (repaired) logger.info({ repaired }, 'sweeper re-enqueued or closed tasks');
    return repaired;
  }
}
