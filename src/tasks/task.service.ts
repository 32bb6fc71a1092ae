import type { EntityManager } from '@mikro-orm/postgresql';
import { LockMode } from '@mikro-orm/core';
import { ConflictError, NotFoundError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { ChatSession } from '../sessions/session.entity.js';
import { Task, TERMINAL_STATUSES, type ITask, type TaskError } from './task.entity.js';

export function presentTask(t: ITask) {
  return {
    id: t.id,
    session_id: t.sessionId,
    agent_id: t.agentId ?? null,
    plan_id: t.planId ?? null,
    status: t.status,
    input: { content: t.input.content, message_id: t.input.message_id, ...(t.input.params ? { params: t.input.params } : {}) },
    result: t.result ?? null,
    error: t.error ?? null,
    usage: t.usage,
    attempts: t.attempts,
    created_at: t.createdAt.toISOString(),
    started_at: t.startedAt ? t.startedAt.toISOString() : null,
    finished_at: t.finishedAt ? t.finishedAt.toISOString() : null,
  };
}

export const isTerminal = (t: Pick<ITask, 'status'>) => TERMINAL_STATUSES.includes(t.status);

export async function getTask(em: EntityManager, userId: string, id: string): Promise<ITask> {
  const task = isUuid(id) ? await em.findOne(Task, { id, userId }) : null;
  if (!task) throw new NotFoundError('task');
  return task;
}

export async function listSessionTasks(em: EntityManager, sessionId: string, limit: number): Promise<ITask[]> {
  return em.find(Task, { sessionId }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit });
}

/**
 * Every change that ends a task locks its session row first: posting a message takes the
 * same lock, so "is this the head of the session?" is never answered from a stale view.
 */
async function lockSession(em: EntityManager, sessionId: string) {
  return em.findOne(ChatSession, { id: sessionId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
}

/** Marks an unfinished task failed. Returns null when it had already finished. */
export async function failTask(em: EntityManager, taskId: string, error: TaskError): Promise<ITask | null> {
  return em.transactional(async (tx) => {
    const probe = await tx.findOne(Task, { id: taskId });
    if (!probe) return null;
    await lockSession(tx, probe.sessionId);
    const task = await tx.findOne(Task, { id: taskId }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
    if (!task || isTerminal(task)) return null;
    task.status = 'failed';
    task.error = error;
    task.finishedAt = new Date();
    await tx.flush();
    return task;
  });
}

/** Cancels a task of the user's. Returns the task and the status it had before. */
export async function cancelTask(em: EntityManager, userId: string, taskId: string): Promise<{ task: ITask; previousStatus: ITask['status'] }> {
  const found = await getTask(em, userId, taskId);
  return em.transactional(async (tx) => {
    await lockSession(tx, found.sessionId);
    const task = await tx.findOne(Task, { id: taskId }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
    if (!task) throw new NotFoundError('task');
    if (isTerminal(task)) throw new ConflictError('task_finished', `task is already ${task.status}`);
    const previousStatus = task.status;
    task.status = 'cancelled';
    task.finishedAt = new Date();
    await tx.flush();
    return { task, previousStatus };
  });
}
