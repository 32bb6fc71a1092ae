import type { EntityManager } from '@mikro-orm/postgresql';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AppError, ConflictError, NotFoundError, ServiceUnavailableError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { presentMessage } from '../sessions/session.service.js';
import type { PostMessageBody } from '../sessions/session.schema.js';
import { insertPostedMessage } from '../tasks/task-store.js';
import { presentTask } from '../tasks/task.service.js';
import type { TaskDispatcher } from '../tasks/task-dispatcher.js';
import type { EventLog } from '../events/event-log.js';
import { redisIsReady } from '../redis.js';

export interface MessageServiceDeps {
  redis: Redis;
  events: EventLog;
  dispatcher: TaskDispatcher;
  logger: Logger;
}

export class MessageService {
  constructor(private readonly deps: MessageServiceDeps) {}

  /**
   * Stores the user's message and a queued task in one transaction, then (after commit)
   * publishes the events and enqueues the task if it is next in its session.
   */
  async post(em: EntityManager, userId: string, sessionId: string, body: PostMessageBody) {
    const mode = body.mode === 'auto' ? (body.agent_id ? 'direct' : 'orchestrated') : body.mode;
    if (mode === 'orchestrated') {
      throw new AppError(422, 'orchestration_unavailable', 'orchestrated mode is not available yet: pass agent_id to talk to an agent directly', [
        { path: 'agent_id', message: 'is required until orchestrated mode ships', keyword: 'required' },
      ]);
    }
    if (!body.agent_id) {
      throw new AppError(422, 'validation_failed', 'agent_id: is required in direct mode', [
        { path: 'agent_id', message: 'is required in direct mode', keyword: 'required' },
      ]);
    }
    if (!isUuid(sessionId)) throw new NotFoundError('session');
    // Tell the client the truth up front: without Redis nothing would run it now.
    if (!redisIsReady(this.deps.redis)) throw new ServiceUnavailableError('queue_unavailable', 'the job queue is unavailable; try again shortly');

    const agentId = body.agent_id;
    const result = await insertPostedMessage(em, {
      userId,
      sessionId,
      agentId,
      content: body.content,
      params: body.params,
      rejectIfBusy: body.on_busy === 'reject',
    });
    if (result === 'no_session') throw new NotFoundError('session');
    if (result === 'no_agent') throw new NotFoundError('agent');
    if (result === 'busy') throw new ConflictError('session_busy', 'the session is still working on an earlier message');

    const message = presentMessage(result.message);
    const task = presentTask(result.task);
    // Sent back to back on one connection, so Redis runs them in this order (task.queued
    // before any event of the worker), for the price of a single round trip.
    const published = this.deps.events.appendMany([
      { type: 'message.created', session_id: sessionId, task_id: task.id, agent_id: agentId, data: { message } },
      { type: 'task.queued', session_id: sessionId, task_id: task.id, agent_id: agentId, data: { task, position: result.ahead } },
    ]);
    const enqueued = result.ahead === 0 ? this.deps.dispatcher.enqueue(result.task) : Promise.resolve();
    const [events, job] = await Promise.allSettled([published, enqueued]);
    if (events.status === 'rejected') this.deps.logger.warn({ err: events.reason, task_id: task.id }, 'could not publish the message events');
    // Stored is stored: the sweeper enqueues tasks whose job never reached Redis.
    if (job.status === 'rejected') this.deps.logger.warn({ err: job.reason, task_id: task.id }, 'task stored but not enqueued; the sweeper will pick it up');
    return { message, task };
  }
}
