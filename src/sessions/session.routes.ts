import type { EntityManager } from '@mikro-orm/postgresql';
import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { pageOf, pageQuerySchema, type PageQuery } from '../db/pagination.js';
import { requireAuth } from '../auth/auth.middleware.js';
import {
  createSessionSchema,
  messageSchema,
  messagesQuerySchema,
  sessionSchema,
  updateSessionSchema,
  type MessagesQuery,
  type SessionBody,
} from './session.schema.js';
import {
  createSession,
  deleteSession,
  getSession,
  listMessages,
  listSessions,
  presentMessage,
  presentSession,
  updateSession,
} from './session.service.js';

export interface SessionRouteHooks {
  /** Runs before the delete; the returned function runs after it committed. */
  beforeDelete?: (em: EntityManager, sessionId: string) => Promise<() => Promise<void>>;
}

export function sessionRoutes(api: ApiRouter, hooks: SessionRouteHooks = {}): void {
  api.route<SessionBody>(
    {
      method: 'post',
      path: '/v1/sessions',
      tag: 'sessions',
      summary: 'Start a chat session',
      body: createSessionSchema,
      responses: { 201: { description: 'created', schema: sessionSchema }, ...errorResponses(400, 401, 413, 415, 422) },
    },
    async (ctx, { body }) => {
      ctx.status = 201;
      ctx.body = presentSession(await createSession(ctx.state.em, requireAuth(ctx).id, body.title));
    },
  );

  api.route<unknown, PageQuery>(
    {
      method: 'get',
      path: '/v1/sessions',
      tag: 'sessions',
      summary: 'List your sessions, most recently active first',
      query: pageQuerySchema,
      responses: { 200: { description: 'a page of sessions', schema: pageOf(sessionSchema) }, ...errorResponses(401, 422) },
    },
    async (ctx, { query }) => {
      const page = await listSessions(ctx.state.em, requireAuth(ctx).id, query.limit, query.cursor);
      ctx.body = { data: page.data.map(presentSession), next_cursor: page.next_cursor };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/sessions/:id',
      tag: 'sessions',
      summary: 'Get a session',
      responses: { 200: { description: 'the session', schema: sessionSchema }, ...errorResponses(401, 404) },
    },
    async (ctx, { params }) => {
      ctx.body = presentSession(await getSession(ctx.state.em, requireAuth(ctx).id, params.id!));
    },
  );

  api.route<SessionBody>(
    {
      method: 'patch',
      path: '/v1/sessions/:id',
      tag: 'sessions',
      summary: 'Rename a session',
      body: updateSessionSchema,
      responses: { 200: { description: 'updated', schema: sessionSchema }, ...errorResponses(400, 401, 404, 413, 415, 422) },
    },
    async (ctx, { params, body }) => {
      ctx.body = presentSession(await updateSession(ctx.state.em, requireAuth(ctx).id, params.id!, body.title));
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/sessions/:id',
      tag: 'sessions',
      summary: 'Delete a session with its messages and tasks',
      responses: { 204: { description: 'deleted' }, ...errorResponses(401, 404) },
    },
    async (ctx, { params }) => {
      const userId = requireAuth(ctx).id;
      const session = await getSession(ctx.state.em, userId, params.id!);
      const after = await hooks.beforeDelete?.(ctx.state.em, session.id);
      await deleteSession(ctx.state.em, userId, session.id);
      await after?.();
      ctx.status = 204;
    },
  );

  api.route<unknown, MessagesQuery>(
    {
      method: 'get',
      path: '/v1/sessions/:id/messages',
      tag: 'sessions',
      summary: "A page of the session's messages, oldest first; `before` pages back in time",
      query: messagesQuerySchema,
      responses: { 200: { description: 'a page of messages', schema: pageOf(messageSchema) }, ...errorResponses(401, 404, 422) },
    },
    async (ctx, { params, query }) => {
      const page = await listMessages(ctx.state.em, requireAuth(ctx).id, params.id!, query.limit, query.before);
      ctx.body = { data: page.data.map(presentMessage), next_cursor: page.next_cursor };
    },
  );
}
