import type { MikroORM } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentQueues } from '../src/jobs/agent-queues.js';
import type { TaskAnnouncer } from '../src/tasks/task-announcer.js';
import type { TaskDispatcher } from '../src/tasks/task-dispatcher.js';

interface HeadRow {
  id: string;
  session_id: string;
  agent_id: string | null;
  agent_exists: boolean;
  status: string;
  age_ms: number;
}

/**
 * PostgreSQL is the truth, Redis may forget. Periodically (one worker at a time):
 * - announce tasks that ended but whose events never went out (Redis failed after the commit);
 * - make sure each session's head task has a job, and that its agent is known to have work
 *   (recovers enqueues that failed after commit, and work lost with a Redis restart);
 * - fail head tasks whose agent was deleted, so their sessions move on.
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
      announcer: TaskAnnouncer;
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
    const { orm, redis, queues, dispatcher, announcer, intervalMs, graceMs, logger } = this.deps;
    const got = await redis.set(this.lockKey, String(process.pid), 'PX', Math.max(intervalMs - 100, 500), 'NX');
    if (!got) return 0;
    const em = orm.em.fork();
    let repaired = await announcer.sweep(em, graceMs);
    const heads = await em.execute<HeadRow[]>(
      `select distinct on (t.session_id) t.id, t.session_id, t.agent_id, t.status,
              exists (select 1 from agents a where a.id = t.agent_id) as agent_exists,
              (extract(epoch from (now() - t.updated_at)) * 1000)::int as age_ms
       from tasks t where t.status in ('queued', 'running', 'awaiting_approval')
       order by t.session_id, t.created_at, t.id`,
    );
    for (const head of heads) {
      if (!head.agent_id || head.status === 'awaiting_approval') continue;
      const task = { id: head.id, sessionId: head.session_id, agentId: head.agent_id };
      if (!head.agent_exists) {
        await announcer.fail(em, task.id, { code: 'agent_not_found', message: 'the agent was deleted before the task ran' });
        repaired += 1;
        continue;
      }
      if (head.age_ms < graceMs) continue;
      const job = await queues.queue(head.agent_id).getJob(head.id);
      const state = job ? await job.getState() : 'missing';
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized') {
        // The job is there; make sure some worker knows its agent has work.
        await queues.announce(head.agent_id);
      } else if (state === 'failed') {
        await announcer.fail(em, task.id, { code: 'internal_error', message: job?.failedReason || 'the job failed' });
        repaired += 1;
      } else if (state === 'missing' || state === 'unknown' || state === 'completed') {
        if (job && state === 'completed') await job.remove().catch(() => {});
        await dispatcher.enqueue(task);
        repaired += 1;
      }
    }
    if (repaired) logger.info({ repaired }, 'sweeper re-enqueued or closed tasks');
    return repaired;
  }
}
