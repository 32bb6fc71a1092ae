import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { requireAuth } from '../auth/auth.middleware.js';
import { getSession } from '../sessions/session.service.js';
import type { AgentQueues } from '../jobs/agent-queues.js';
import type { Logger } from 'pino';
import { sessionTasksQuerySchema, taskSchema } from './task.schema.js';
import { cancelTask, getTask, listSessionTasks, presentTask } from './task.service.js';
import type { TaskAnnouncer } from './task-announcer.js';

export interface TaskRouteDeps {
  queues: AgentQueues;
  announcer: TaskAnnouncer;
  logger: Logger;
}

export function taskRoutes(api: ApiRouter, deps: TaskRouteDeps): void {
  api.route(
    {
      method: 'get',
      path: '/v1/tasks/:id',
      tag: 'tasks',
      summary: 'Get a task',
      responses: { 200: { description: 'the task', schema: taskSchema }, ...errorResponses(401, 404) },
    },
    async (ctx, { params }) => {
      ctx.body = presentTask(await getTask(ctx.state.em, requireAuth(ctx).id, params.id!));
    },
  );

  api.route<unknown, { limit: number }>(
    {
      method: 'get',
      path: '/v1/sessions/:id/tasks',
      tag: 'tasks',
      summary: "The session's tasks, oldest first",
      query: sessionTasksQuerySchema,
      responses: {
        200: { description: 'tasks', schema: { type: 'object', properties: { data: { type: 'array', items: taskSchema } } } },
        ...errorResponses(401, 404, 422),
      },
    },
    async (ctx, { params, query }) => {
      const session = await getSession(ctx.state.em, requireAuth(ctx).id, params.id!);
      ctx.body = { data: (await listSessionTasks(ctx.state.em, session.id, query.limit)).map(presentTask) };
    },
  );

  api.route(
    {
      method: 'post',
      path: '/v1/tasks/:id/cancel',
      tag: 'tasks',
      summary: 'Cancel a queued or running task (aborts an in-flight model call)',
      responses: { 202: { description: 'cancelled', schema: taskSchema }, ...errorResponses(401, 404, 409) },
    },
    async (ctx, { params }) => {
      const { task, previousStatus } = await cancelTask(ctx.state.em, requireAuth(ctx).id, params.id!);
      // Committed: from here on Redis trouble must not turn the answer into an error. A running
      // task's worker also notices through its periodic check, and the sweeper announces.
      try {
        await deps.queues.stopTask({ id: task.id, agentId: task.agentId, status: previousStatus });
      } catch (err) {
        deps.logger.warn({ err, task_id: task.id }, 'could not signal the cancel');
      }
      await deps.announcer.announceSafely(ctx.state.em, task);
      ctx.status = 202;
      ctx.body = presentTask(task);
    },
  );
}
