import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { newId } from '../db/ids.js';

export const User = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.uuid().primary().onCreate(() => newId()),
    email: p.string().length(320).unique(),
    passwordHash: p.string().length(255).nullable(),
    role: p.string().length(16).default('user'),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});
export type IUser = InferEntity<typeof User>;
