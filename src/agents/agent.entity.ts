import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../db/ids.js';
import { User } from '../users/user.entity.js';

export interface ModelParams {
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
}

export const Agent = defineEntity({
  name: 'Agent',
  tableName: 'agents',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    userId: () => p.manyToOne(User).mapToPk().fieldName('user_id').deleteRule('cascade'),
    name: p.string().length(100),
    description: p.text().default(''),
    systemPrompt: p.text(),
    model: p.string().length(200),
    tools: p.json<string[]>().onCreate(() => []),
    capabilities: p.json<string[]>().onCreate(() => []),
    concurrencyLimit: p.integer().default(3),
    params: p.json<ModelParams>().onCreate(() => ({})),
    status: p.string().length(16).default('active'),
    version: p.integer().default(1),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
  uniques: [{ name: 'agents_user_id_name_unique', properties: ['userId', 'name'] }],
  indexes: [{ name: 'agents_user_id_created_at_id_index', properties: ['userId', 'createdAt', 'id'] }],
});
export type IAgent = InferEntity<typeof Agent>;
