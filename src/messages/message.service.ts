import type { EntityManager } from '@mikro-orm/postgresql';
import { LockMode } from '@mikro-orm/core';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AppError, ConflictError, NotFoundError, ServiceUnavailableError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { Agent } from '../agents/agent.entity.js';
import { ChatSession } from '../sessions/session.entity.js';
import { presentMessage } from '../sessions/session.service.js';
import type { PostMessageBody } from '../sessions/session.schema.js';
import { Task } from '../tasks/task.entity.js';
import { presentTask } from '../tasks/task.service.js';
import type { TaskDispatcher } from '../tasks/task-dispatcher.js';
import type { EventLog } from '../events/event-log.js';
import { redisIsReady } from '../redis.js';
import { Message } from './message.entity.js';

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
    const result = await em.transactional(async (tx) => {
      const session = await tx.findOne(ChatSession, { id: sessionId, userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!session) throw new NotFoundError('session');
      const agent = await tx.findOne(Agent, { id: agentId, userId });
      if (!agent) throw new NotFoundError('agent');
      const ahead = await tx.count(Task, { sessionId, status: { $in: ['queued', 'running', 'awaiting_approval'] } });
      if (ahead > 0 && body.on_busy === 'reject') throw new ConflictError('session_busy', 'the session is still working on an earlier message');
      const now = new Date();
      const message = tx.create(Message, { sessionId, role: 'user', content: body.content, agentId, taskId: null, createdAt: now });
      const task = tx.create(Task, {
        userId,
        sessionId,
        agentId,
        status: 'queued',
        input: { content: body.content, message_id: message.id, ...(body.params ? { params: body.params } : {}) },
        createdAt: now,
      });
      message.taskId = task.id;
      session.messageCount += 1;
      session.lastMessageAt = now;
      session.lastActivityAt = now;
      await tx.flush();
      return { message, task, ahead };
    });

    const message = presentMessage(result.message);
    const task = presentTask(result.task);
    try {
      await this.deps.events.appendMany([
        { type: 'message.created', session_id: sessionId, task_id: task.id, agent_id: agentId, data: { message } },
        { type: 'task.queued', session_id: sessionId, task_id: task.id, agent_id: agentId, data: { task, position: result.ahead } },
      ]);
      if (result.ahead === 0) await this.deps.dispatcher.enqueue(result.task);
    } catch (err) {
      // Stored is stored: the sweeper enqueues tasks whose job never reached Redis.
      this.deps.logger.warn({ err, task_id: task.id }, 'task stored but not enqueued; the sweeper will pick it up');
    }
    return { message, task };
  }
}
