export const modelParamsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    max_tokens: { type: 'integer', minimum: 1, maximum: 200000 },
  },
} as const;

const name = { type: 'string', minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9 _.-]*$' } as const;
const fields = {
  name,
  description: { type: 'string', maxLength: 2000 },
  system_prompt: { type: 'string', minLength: 1, maxLength: 100000 },
  model: { type: 'string', minLength: 1, maxLength: 200 },
  tools: { type: 'array', maxItems: 100, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 100 } },
  capabilities: { type: 'array', maxItems: 100, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 100 } },
  concurrency_limit: { type: 'integer', minimum: 1, maximum: 50 },
  params: modelParamsSchema,
} as const;

export const createAgentSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'system_prompt', 'model'],
  properties: fields,
} as const;

export const updateAgentSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: fields,
} as const;

export interface AgentBody {
  name: string;
  system_prompt: string;
  model: string;
  description?: string;
  tools?: string[];
  capabilities?: string[];
  concurrency_limit?: number;
  params?: { temperature?: number; top_p?: number; max_tokens?: number };
}

export const agentSchema = {
  type: 'object',
  required: ['id', 'name', 'description', 'system_prompt', 'model', 'tools', 'capabilities', 'concurrency_limit', 'params', 'status', 'version', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    ...fields,
    status: { type: 'string' },
    version: { type: 'integer' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
} as const;
