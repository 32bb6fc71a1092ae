import type { EntityManager } from '@mikro-orm/postgresql';
import { NotFoundError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { decodeCursor, encodeCursor, olderThan } from '../db/pagination.js';
import { Message, type IMessage } from '../messages/message.entity.js';
import { ChatSession, type IChatSession } from './session.entity.js';

export function presentSession(s: IChatSession) {
  return {
    id: s.id,
    title: s.title ?? null,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
    last_message_at: s.lastMessageAt ? s.lastMessageAt.toISOString() : null,
    message_count: s.messageCount,
  };
}

export function presentMessage(m: IMessage) {
  return {
    id: m.id,
    session_id: m.sessionId,
    role: m.role,
    content: m.content,
    agent_id: m.agentId ?? null,
    task_id: m.taskId ?? null,
    created_at: m.createdAt.toISOString(),
  };
}

/** The user's session, or not_found (also for other users' sessions and malformed ids). */
export async function getSession(em: EntityManager, userId: string, id: string): Promise<IChatSession> {
  const session = isUuid(id) ? await em.findOne(ChatSession, { id, userId }) : null;
  if (!session) throw new NotFoundError('session');
  return session;
}

export async function createSession(em: EntityManager, userId: string, title?: string | null) {
  const session = em.create(ChatSession, { userId, title: title ?? null });
  await em.flush();
  return session;
}

/** Most recently active first: a new message moves its session to the top. */
export async function listSessions(em: EntityManager, userId: string, limit: number, cursor?: string) {
  const after = decodeCursor(cursor);
  const rows = await em.find(
    ChatSession,
    { userId, ...olderThan('lastActivityAt', after) } as any,
    { orderBy: { lastActivityAt: 'desc', id: 'desc' }, limit: limit + 1 },
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page, next_cursor: rows.length > limit && last ? encodeCursor(last.lastActivityAt, last.id) : null };
}

export async function updateSession(em: EntityManager, userId: string, id: string, title: string | null | undefined) {
  const session = await getSession(em, userId, id);
  if (title !== undefined) session.title = title;
  session.updatedAt = new Date();
  await em.flush();
  return session;
}

/** Messages and tasks go with it (ON DELETE CASCADE). */
export async function deleteSession(em: EntityManager, userId: string, id: string): Promise<IChatSession> {
  const session = await getSession(em, userId, id);
  await em.remove(session).flush();
  return session;
}

/**
 * One page of a session's messages, oldest first. Without `before`: the latest page;
 * `next_cursor` then points at the page of older messages.
 */
export async function listMessages(em: EntityManager, userId: string, sessionId: string, limit: number, before?: string) {
  await getSession(em, userId, sessionId);
  let cursor = undefined as ReturnType<typeof decodeCursor>;
  if (before && isUuid(before)) {
    const anchor = await em.findOne(Message, { id: before, sessionId });
    if (!anchor) throw new NotFoundError('message');
    cursor = { at: anchor.createdAt, id: anchor.id };
  } else {
    cursor = decodeCursor(before, 'before');
  }
  const rows = await em.find(
    Message,
    { sessionId, ...olderThan('createdAt', cursor) } as any,
    { orderBy: { createdAt: 'desc', id: 'desc' }, limit: limit + 1 },
  );
  const page = rows.slice(0, limit);
  const oldest = page.at(-1);
  return { data: page.reverse(), next_cursor: rows.length > limit && oldest ? encodeCursor(oldest.createdAt, oldest.id) : null };
}
