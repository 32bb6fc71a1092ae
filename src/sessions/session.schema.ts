import { modelParamsSchema } from '../agents/agent.schema.js';

export const createSessionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { title: { type: ['string', 'null'], maxLength: 200 } },
} as const;

export const updateSessionSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { title: { type: ['string', 'null'], maxLength: 200 } },
} as const;

export interface SessionBody {
  title?: string | null;
}

export const sessionSchema = {
  type: 'object',
  required: ['id', 'title', 'created_at', 'updated_at', 'last_message_at', 'message_count'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    title: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    last_message_at: { type: ['string', 'null'], format: 'date-time' },
    message_count: { type: 'integer' },
  },
} as const;

export const messageSchema = {
  type: 'object',
  required: ['id', 'session_id', 'role', 'content', 'agent_id', 'task_id', 'created_at'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    session_id: { type: 'string', format: 'uuid' },
    role: { enum: ['user', 'assistant', 'tool'] },
    content: { type: 'string' },
    agent_id: { type: ['string', 'null'] },
    task_id: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

export const messagesQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
    before: { type: 'string', maxLength: 200 },
  },
} as const;

export interface MessagesQuery {
  limit: number;
  before?: string;
}

export const postMessageSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['content'],
  properties: {
    content: { type: 'string', minLength: 1, maxLength: 100000 },
    agent_id: { type: 'string', format: 'uuid' },
    mode: { enum: ['auto', 'direct', 'orchestrated'], default: 'auto' },
    params: modelParamsSchema,
    on_busy: { enum: ['queue', 'reject'], default: 'queue' },
  },
} as const;

export interface PostMessageBody {
  content: string;
  agent_id?: string;
  mode: 'auto' | 'direct' | 'orchestrated';
  params?: { temperature?: number; top_p?: number; max_tokens?: number };
  on_busy: 'queue' | 'reject';
}
