import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { EventInput } from '../events/event-types.js';
import type { EventLog } from '../events/event-log.js';
import { presentMessage } from '../sessions/session.service.js';
import type { IMessage } from '../messages/message.entity.js';
import type { ITask, TaskError } from './task.entity.js';
import type { TaskDispatcher } from './task-dispatcher.js';
import { failTask, presentTask } from './task.service.js';
import { rowToMessage, rowToTask } from './task-store.js';

/**
 * Announces that a task ended: its events, then the session's next task, then `notified_at`.
 * A crash or Redis failure before the last step leaves the task un-notified, and the sweeper
 * (or the job's retry) announces it again: terminal events are delivered at least once.
 */
export class TaskAnnouncer {
  constructor(
    private readonly events: EventLog,
    private readonly dispatcher: TaskDispatcher,
    private readonly logger: Logger,
  ) {}

  async announce(em: EntityManager, task: ITask, answer?: IMessage): Promise<void> {
    const base = { session_id: task.sessionId, task_id: task.id, agent_id: task.agentId };
    const body = presentTask(task);
    const events: EventInput[] = [];
    if (task.status === 'completed') {
      const message = answer ?? (await this.answerOf(em, task.id));
      if (message) events.push({ ...base, type: 'message.created', data: { message: presentMessage(message) } });
      events.push({ ...base, type: 'task.completed', data: { task: body, message_id: message?.id ?? '' } });
    } else if (task.status === 'failed') {
      events.push({ ...base, type: 'task.failed', data: { task: body, error: task.error ?? { code: 'failed', message: 'the task failed' } } });
    } else if (task.status === 'cancelled') {
      events.push({ ...base, type: 'task.cancelled', data: { task: body } });
    } else {
      return;
    }
    await this.events.appendMany(events);
    // Marked first, then the next task enqueued: a crash in between leaves a head without a
    // job, which the sweeper repairs. Read after the commit, so a message posted while this
    // task held the session lock is seen.
    const [next] = await em.execute<Record<string, unknown>[]>(
      `with n as (update tasks set notified_at = now() where id = ?)
       select id, session_id, agent_id, status from tasks
       where session_id = ? and status in ('queued', 'running', 'awaiting_approval')
       order by created_at, id limit 1`,
      [task.id, task.sessionId],
    );
    if (next?.status === 'queued') await this.dispatcher.enqueueSafely(rowToTask(next));
  }

  /**
   * Ends an unfinished task as failed and announces it (`task.failed`, the session moves on).
   * Returns false when it had already ended. An announcement that fails is left to the sweeper.
   */
  async fail(em: EntityManager, taskId: string, error: TaskError): Promise<boolean> {
    const failed = await failTask(em, taskId, error);
    if (failed) await this.announceSafely(em, failed);
    return Boolean(failed);
  }

  /** Like `announce`, but never throws: the sweeper retries what fails here. */
  async announceSafely(em: EntityManager, task: ITask, answer?: IMessage): Promise<void> {
    try {
      await this.announce(em, task, answer);
    } catch (err) {
      this.logger.warn({ err, task_id: task.id }, 'could not announce the end of a task; the sweeper will retry');
    }
  }

  private async answerOf(em: EntityManager, taskId: string): Promise<IMessage | null> {
    const [row] = await em.execute<Record<string, unknown>[]>(`select * from messages where task_id = ? and role = 'assistant'`, [taskId]);
    return row ? rowToMessage(row) : null;
  }

  /** The ended task if it still needs announcing (a retried job, the sweeper). */
  async pending(em: EntityManager, taskId: string): Promise<ITask | null> {
    const [row] = await em.execute<Record<string, unknown>[]>(
      `select * from tasks where id = ? and notified_at is null and status in ('completed', 'failed', 'cancelled')`,
      [taskId],
    );
    return row ? rowToTask(row) : null;
  }

  /** Announces ended tasks that were not announced within `graceMs`. Returns how many. */
  async sweep(em: EntityManager, graceMs: number, limit = 500): Promise<number> {
    const rows = await em.execute<Record<string, unknown>[]>(
      `select * from tasks where notified_at is null and status in ('completed', 'failed', 'cancelled')
       and finished_at < now() - make_interval(secs => ?) order by finished_at limit ?`,
      [graceMs / 1000, limit],
    );
    for (const row of rows) await this.announce(em, rowToTask(row));
    return rows.length;
  }
}
