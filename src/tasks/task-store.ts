import type { EntityManager } from '@mikro-orm/postgresql';
import { newId } from '../db/ids.js';
import type { ModelParams } from '../agents/agent.entity.js';
import type { IMessage } from '../messages/message.entity.js';
import type { ITask, TaskUsage } from './task.entity.js';

/*
 * The per-message hot path in plain SQL through MikroORM's connection: one or two statements
 * where the unit of work would spend eight round trips and most of a millisecond each on
 * change tracking. Everything else uses the entities.
 */

type Row = Record<string, any>;

export function rowToTask(r: Row): ITask {
  return {
    id: r.id,
    userId: r.user_id,
    sessionId: r.session_id,
    agentId: r.agent_id,
    planId: r.plan_id,
    status: r.status,
    input: r.input,
    result: r.result,
    error: r.error,
    usage: r.usage,
    attempts: r.attempts,
    createdAt: new Date(r.created_at),
    startedAt: r.started_at ? new Date(r.started_at) : null,
    finishedAt: r.finished_at ? new Date(r.finished_at) : null,
    notifiedAt: r.notified_at ? new Date(r.notified_at) : null,
    updatedAt: new Date(r.updated_at),
  } as ITask;
}

export function rowToMessage(r: Row): IMessage {
  return {
    id: r.id,
    sessionId: r.session_id,
    role: r.role,
    content: r.content,
    agentId: r.agent_id,
    taskId: r.task_id,
    createdAt: new Date(r.created_at),
  } as IMessage;
}

export interface PostedMessage {
  message: IMessage;
  task: ITask;
  /** Unfinished tasks ahead of this one in its session (0: it runs next). */
  ahead: number;
}

/**
 * Stores a user message and its queued task. The session row is locked by a statement of
 * its own first, so the count of tasks ahead is read after any completion that held the
 * lock has committed (a single statement would count from a snapshot taken before the wait).
 * Returns null when the session or agent is not the user's.
 */
export async function insertPostedMessage(
  em: EntityManager,
  args: { userId: string; sessionId: string; agentId: string; content: string; params?: ModelParams; rejectIfBusy: boolean },
): Promise<PostedMessage | 'busy' | 'no_session' | 'no_agent'> {
  return em.transactional(async (tx) => {
    const [lock] = await tx.execute<Row[]>(
      `select s.id, exists (select 1 from agents a where a.id = ? and a.user_id = ?) as agent_ok
       from chat_sessions s where s.id = ? and s.user_id = ? for update of s`,
      [args.agentId, args.userId, args.sessionId, args.userId],
    );
    if (!lock) return 'no_session';
    if (!lock.agent_ok) return 'no_agent';
    const messageId = newId();
    const taskId = newId();
    const now = new Date();
    const input = { content: args.content, message_id: messageId, ...(args.params ? { params: args.params } : {}) };
    const [row] = await tx.execute<Row[]>(
      `with ahead as (
         select count(*)::int as n from tasks where session_id = ? and status in ('queued', 'running', 'awaiting_approval')
       ), t as (
         insert into tasks (id, user_id, session_id, agent_id, status, input, usage, attempts, created_at, updated_at)
         select ?, ?, ?, ?, 'queued', ?::jsonb, '{"prompt_tokens":0,"completion_tokens":0}'::jsonb, 0, ?, ?
         where ? or (select n from ahead) = 0
         returning *
       ), m as (
         insert into messages (id, session_id, role, content, agent_id, task_id, created_at)
         select ?, ?, 'user', ?, ?, t.id, ? from t
         returning *
       ), s as (
         update chat_sessions set message_count = message_count + 1, last_message_at = ?, last_activity_at = ?, updated_at = ?
         where id = ? and exists (select 1 from t)
       )
       select (select n from ahead) as ahead, (select row_to_json(t) from t) as task, (select row_to_json(m) from m) as message`,
      [
        args.sessionId,
        taskId, args.userId, args.sessionId, args.agentId, JSON.stringify(input), now, now,
        !args.rejectIfBusy,
        messageId, args.sessionId, args.content, args.agentId, now,
        now, now, now, args.sessionId,
      ],
    );
    if (!row!.task) return 'busy';
    return { message: rowToMessage(row!.message), task: rowToTask(row!.task), ahead: row!.ahead };
  });
}

export interface ClaimedTask {
  task: ITask;
  agent: { id: string; systemPrompt: string; model: string; params: ModelParams } | null;
  /** Earlier turns of the session in task order, oldest first (before the token budget). */
  history: Array<{ role: 'user' | 'assistant'; content: string }>;
}

/**
 * Moves a task into `running` for a new attempt and loads what the run needs (agent,
 * history) in the same statement. Null when it must not run: finished, cancelled, deleted.
 */
export async function claimTask(em: EntityManager, taskId: string, historyLimit: number): Promise<ClaimedTask | null> {
  const [row] = await em.execute<Row[]>(
    `with t as (
       update tasks set status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
       where id = ? and status in ('queued', 'running')
       returning *
     )
     select row_to_json(t) as task,
       (select json_build_object('id', a.id, 'systemPrompt', a.system_prompt, 'model', a.model, 'params', a.params)
          from agents a where a.id = t.agent_id) as agent,
       (select coalesce(json_agg(json_build_object('role', h.role, 'content', h.content) order by h.o desc), '[]'::json) from (
          select m.role, m.content, row_number() over (order by t2.created_at desc, t2.id desc, m.created_at desc, m.id desc) as o
          from messages m join tasks t2 on t2.id = m.task_id
          where m.session_id = t.session_id and m.role in ('user', 'assistant') and (t2.created_at, t2.id) < (t.created_at, t.id)
          order by t2.created_at desc, t2.id desc, m.created_at desc, m.id desc
          limit ?
        ) h) as history
     from t`,
    [taskId, historyLimit],
  );
  if (!row) return null;
  return { task: rowToTask(row.task), agent: row.agent, history: row.history };
}

export interface Completion {
  task: ITask;
  message: IMessage;
}

/**
 * Stores the answer and completes the task in one statement, exactly once: only a task still
 * `running` is completed (a cancelled one is not). The session row is locked before the task
 * row, the order posting and cancelling use, which serializes them without deadlocks.
 */
export async function completeTaskRow(em: EntityManager, taskId: string, answer: { text: string; usage: TaskUsage }): Promise<Completion | null> {
  const now = new Date();
  const [row] = await em.execute<Row[]>(
    `with locked as (
       select id from chat_sessions where id = (select session_id from tasks where id = ?) for update
     ), t as (
       update tasks set status = 'completed', result = ?, usage = ?::jsonb, error = null, finished_at = ?, updated_at = ?
       where id = ? and status = 'running' and exists (select 1 from locked)
       returning *
     ), m as (
       insert into messages (id, session_id, role, content, agent_id, task_id, created_at)
       select ?, t.session_id, 'assistant', ?, t.agent_id, t.id, ? from t
       returning *
     ), s as (
       update chat_sessions set message_count = message_count + 1, last_message_at = ?, last_activity_at = ?, updated_at = ?
       where id = (select session_id from t)
     )
     select row_to_json(t) as task, (select row_to_json(m) from m) as message from t`,
    [taskId, answer.text, JSON.stringify(answer.usage), now, now, taskId, newId(), answer.text, now, now, now, now],
  );
  if (!row) return null;
  return { task: rowToTask(row.task), message: rowToMessage(row.message) };
}
