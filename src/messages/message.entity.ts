import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../db/ids.js';
import { ChatSession } from '../sessions/session.entity.js';

export type MessageRole = 'user' | 'assistant' | 'tool';

export const Message = defineEntity({
  name: 'Message',
  tableName: 'messages',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    sessionId: () => p.manyToOne(ChatSession).mapToPk().fieldName('session_id').deleteRule('cascade'),
    role: p.string().length(16).$type<MessageRole>(),
    content: p.text(),
    agentId: p.uuid().nullable(),
    taskId: p.uuid().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
  indexes: [{ name: 'messages_session_id_created_at_id_index', properties: ['sessionId', 'createdAt', 'id'] }],
  // At most one assistant answer per task: the database, not the worker, guarantees "completed once".
  uniques: [{ name: 'messages_task_id_role_unique', properties: ['taskId', 'role'] }],
});
export type IMessage = InferEntity<typeof Message>;
