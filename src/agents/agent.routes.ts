import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { pageOf, pageQuerySchema, type PageQuery } from '../db/pagination.js';
import { requireAuth } from '../auth/auth.middleware.js';
import { agentSchema, createAgentSchema, updateAgentSchema, type AgentBody } from './agent.schema.js';
import { presentAgent, type AgentService } from './agent.service.js';

export function agentRoutes(api: ApiRouter, agents: AgentService): void {
  api.route<AgentBody>(
    {
      method: 'post',
      path: '/v1/agents',
      tag: 'agents',
      summary: 'Create an agent',
      body: createAgentSchema,
      responses: { 201: { description: 'created', schema: agentSchema }, ...errorResponses(400, 401, 409, 413, 415, 422) },
    },
    async (ctx, { body }) => {
      ctx.status = 201;
      ctx.body = presentAgent(await agents.create(ctx.state.em, requireAuth(ctx).id, body));
    },
  );

  api.route<unknown, PageQuery>(
    {
      method: 'get',
      path: '/v1/agents',
      tag: 'agents',
      summary: 'List your agents, newest first',
      query: pageQuerySchema,
      responses: { 200: { description: 'a page of agents', schema: pageOf(agentSchema) }, ...errorResponses(401, 422) },
    },
    async (ctx, { query }) => {
      const page = await agents.list(ctx.state.em, requireAuth(ctx).id, query.limit, query.cursor);
      ctx.body = { data: page.data.map(presentAgent), next_cursor: page.next_cursor };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/agents/:id',
      tag: 'agents',
      summary: 'Get an agent',
      responses: { 200: { description: 'the agent', schema: agentSchema }, ...errorResponses(401, 404) },
    },
    async (ctx, { params }) => {
      ctx.body = presentAgent(await agents.get(ctx.state.em, requireAuth(ctx).id, params.id!));
    },
  );

  api.route<Partial<AgentBody>>(
    {
      method: 'patch',
      path: '/v1/agents/:id',
      tag: 'agents',
      summary: 'Update an agent (bumps version)',
      body: updateAgentSchema,
      responses: { 200: { description: 'updated', schema: agentSchema }, ...errorResponses(400, 401, 404, 409, 413, 415, 422) },
    },
    async (ctx, { params, body }) => {
      ctx.body = presentAgent(await agents.update(ctx.state.em, requireAuth(ctx).id, params.id!, body));
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/agents/:id',
      tag: 'agents',
      summary: 'Delete an agent',
      responses: { 204: { description: 'deleted' }, ...errorResponses(401, 404) },
    },
    async (ctx, { params }) => {
      await agents.remove(ctx.state.em, requireAuth(ctx).id, params.id!);
      ctx.status = 204;
    },
  );
}
