export const taskSchema = {
  type: 'object',
  required: ['id', 'session_id', 'agent_id', 'plan_id', 'status', 'input', 'result', 'error', 'usage', 'attempts', 'created_at', 'started_at', 'finished_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    session_id: { type: 'string', format: 'uuid' },
    agent_id: { type: ['string', 'null'] },
    plan_id: { type: ['string', 'null'] },
    status: { enum: ['queued', 'running', 'awaiting_approval', 'completed', 'failed', 'cancelled'] },
    input: { type: 'object' },
    result: { type: ['string', 'null'] },
    error: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    usage: {
      type: 'object',
      properties: { prompt_tokens: { type: 'integer' }, completion_tokens: { type: 'integer' } },
    },
    attempts: { type: 'integer' },
    created_at: { type: 'string', format: 'date-time' },
    started_at: { type: ['string', 'null'], format: 'date-time' },
    finished_at: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

export const sessionTasksQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
} as const;
