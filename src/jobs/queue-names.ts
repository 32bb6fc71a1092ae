/** BullMQ key prefix for a deployment: every queue lives under `<REDIS_PREFIX>:q:`. */
export const bullPrefix = (redisPrefix: string) => `${redisPrefix}:q`;

/** One queue per agent, so each agent's concurrency limit is its queue's global concurrency. */
export const agentQueueName = (agentId: string) => `agent-${agentId}`;

/** Redis keys outside BullMQ that coordinate the consumers. */
export const activityKeys = (redisPrefix: string) => ({
  /** Set of agent ids whose queues may have work. */
  activeAgents: `${redisPrefix}:active-agents`,
  /** Channel: an agent id is published whenever its queue receives a job. */
  activityChannel: `${redisPrefix}:queue-activity`,
  /** Channel: a task id is published when a running task must be aborted. */
  cancelChannel: `${redisPrefix}:task-cancel`,
});
