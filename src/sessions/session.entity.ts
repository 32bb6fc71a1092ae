import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../db/ids.js';
import { User } from '../users/user.entity.js';

export const ChatSession = defineEntity({
  name: 'ChatSession',
  tableName: 'chat_sessions',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    userId: () => p.manyToOne(User).mapToPk().fieldName('user_id').deleteRule('cascade'),
    title: p.string().length(200).nullable(),
    messageCount: p.integer().default(0),
    lastMessageAt: p.datetime().nullable(),
    /** Sort key for "recent sessions": creation time until the first message, then the latest message. */
    lastActivityAt: p.datetime().onCreate(() => new Date()),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
  indexes: [{ name: 'chat_sessions_user_activity_index', properties: ['userId', 'lastActivityAt', 'id'] }],
});
export type IChatSession = InferEntity<typeof ChatSession>;
