import type { EntityManager } from '@mikro-orm/postgresql';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { ConflictError, NotFoundError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { decodeCursor, encodeCursor, olderThan } from '../db/pagination.js';
import type { AgentQueues } from '../jobs/agent-queues.js';
import { Task } from '../tasks/task.entity.js';
import type { TaskAnnouncer } from '../tasks/task-announcer.js';
import { Agent, type IAgent } from './agent.entity.js';
import type { AgentBody } from './agent.schema.js';

export const DEFAULT_CONCURRENCY_LIMIT = 3;

export function presentAgent(a: IAgent) {
  return {
    id: a.id,
    name: a.name,
    description: a.description,
    system_prompt: a.systemPrompt,
    model: a.model,
    tools: a.tools,
    capabilities: a.capabilities,
    concurrency_limit: a.concurrencyLimit,
    params: a.params,
    status: a.status,
    version: a.version,
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

async function flushUnique(em: EntityManager, name: string): Promise<void> {
  try {
    await em.flush();
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) {
      throw new ConflictError('agent_name_taken', `an agent named "${name}" already exists`);
    }
    throw err;
  }
}

export class AgentService {
  constructor(
    private readonly queues: AgentQueues,
    private readonly announcer: TaskAnnouncer,
  ) {}

  /** The user's agent, or not_found (also for other users' agents and malformed ids). */
  async get(em: EntityManager, userId: string, id: string): Promise<IAgent> {
    const agent = isUuid(id) ? await em.findOne(Agent, { id, userId }) : null;
    if (!agent) throw new NotFoundError('agent');
    return agent;
  }

  async create(em: EntityManager, userId: string, body: AgentBody): Promise<IAgent> {
    const agent = em.create(Agent, {
      userId,
      name: body.name,
      description: body.description ?? '',
      systemPrompt: body.system_prompt,
      model: body.model,
      tools: body.tools ?? [],
      capabilities: body.capabilities ?? [],
      concurrencyLimit: body.concurrency_limit ?? DEFAULT_CONCURRENCY_LIMIT,
      params: body.params ?? {},
    });
    await flushUnique(em, body.name);
    await this.queues.setConcurrency(agent.id, agent.concurrencyLimit);
    return agent;
  }

  async list(em: EntityManager, userId: string, limit: number, cursor?: string) {
    const after = decodeCursor(cursor);
    const rows = await em.find(
      Agent,
      { userId, ...olderThan('createdAt', after) } as any,
      { orderBy: { createdAt: 'desc', id: 'desc' }, limit: limit + 1 },
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { data: page, next_cursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null };
  }

  async update(em: EntityManager, userId: string, id: string, body: Partial<AgentBody>): Promise<IAgent> {
    const agent = await this.get(em, userId, id);
    const before = agent.concurrencyLimit;
    if (body.name !== undefined) agent.name = body.name;
    if (body.description !== undefined) agent.description = body.description;
    if (body.system_prompt !== undefined) agent.systemPrompt = body.system_prompt;
    if (body.model !== undefined) agent.model = body.model;
    if (body.tools !== undefined) agent.tools = body.tools;
    if (body.capabilities !== undefined) agent.capabilities = body.capabilities;
    if (body.concurrency_limit !== undefined) agent.concurrencyLimit = body.concurrency_limit;
    if (body.params !== undefined) agent.params = body.params;
    agent.version += 1;
    agent.updatedAt = new Date();
    await flushUnique(em, agent.name);
    // After commit: queued work picks the new limit up on its next fetch.
    if (agent.concurrencyLimit !== before) await this.queues.setConcurrency(agent.id, agent.concurrencyLimit);
    return agent;
  }

  /** Deletes the agent; its unfinished tasks fail (`agent_deleted`) so their sessions move on. */
  async remove(em: EntityManager, userId: string, id: string): Promise<void> {
    const agent = await this.get(em, userId, id);
    const unfinished = await em.find(Task, { agentId: agent.id, status: { $in: ['queued', 'running', 'awaiting_approval'] } });
    await em.remove(agent).flush();
    await this.queues.dropAgent(agent.id).catch(() => {});
    for (const task of unfinished) {
      if (task.status !== 'queued') await this.queues.publishCancel(task.id).catch(() => {}); // its queue is already gone
      await this.announcer.fail(em, task.id, { code: 'agent_deleted', message: 'the agent was deleted' });
    }
  }
}
