import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { requireAuth } from '../auth/auth.middleware.js';
import { messageSchema, postMessageSchema, type PostMessageBody } from '../sessions/session.schema.js';
import { taskSchema } from '../tasks/task.schema.js';
import type { MessageService } from './message.service.js';

export function messageRoutes(api: ApiRouter, messages: MessageService): void {
  api.route<PostMessageBody>(
    {
      method: 'post',
      path: '/v1/sessions/:id/messages',
      tag: 'sessions',
      summary: 'Post a message; the agent answers in the background (watch the events stream)',
      body: postMessageSchema,
      responses: {
        202: {
          description: 'stored and queued',
          schema: { type: 'object', required: ['message', 'task'], properties: { message: messageSchema, task: taskSchema } },
        },
        ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
      },
    },
    async (ctx, { params, body }) => {
      ctx.status = 202;
      ctx.body = await messages.post(ctx.state.em, requireAuth(ctx).id, params.id!, body);
    },
  );
}
