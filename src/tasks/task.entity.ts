import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../db/ids.js';
import { ChatSession } from '../sessions/session.entity.js';
import type { ModelParams } from '../agents/agent.entity.js';

export type TaskStatus = 'queued' | 'running' | 'awaiting_approval' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

export interface TaskInput {
  content: string;
  message_id: string;
  params?: ModelParams;
}
export interface TaskUsage {
  prompt_tokens: number;
  completion_tokens: number;
}
export interface TaskError {
  code: string;
  message: string;
}

export const Task = defineEntity({
  name: 'Task',
  tableName: 'tasks',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    userId: p.uuid(),
    sessionId: () => p.manyToOne(ChatSession).mapToPk().fieldName('session_id').deleteRule('cascade'),
    agentId: p.uuid().nullable(),
    planId: p.uuid().nullable(),
    status: p.string().length(24).$type<TaskStatus>().default('queued'),
    input: p.json<TaskInput>(),
    result: p.text().nullable(),
    error: p.json<TaskError>().nullable(),
    usage: p.json<TaskUsage>().onCreate(() => ({ prompt_tokens: 0, completion_tokens: 0 })),
    attempts: p.integer().default(0),
    createdAt: p.datetime().onCreate(() => new Date()),
    startedAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
    /** When the end of the task was announced (events published, session advanced); null until then. */
    notifiedAt: p.datetime().nullable(),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
  indexes: [
    { name: 'tasks_session_id_created_at_index', properties: ['sessionId', 'createdAt', 'id'] },
    { name: 'tasks_agent_id_status_index', properties: ['agentId', 'status'] },
    { name: 'tasks_status_created_at_index', properties: ['status', 'createdAt'] },
    // The sweeper's look-up of ended tasks whose events never went out.
    { name: 'tasks_unnotified_index', properties: ['finishedAt'], where: "notified_at is null and status in ('completed', 'failed', 'cancelled')" },
  ],
});
export type ITask = InferEntity<typeof Task>;
