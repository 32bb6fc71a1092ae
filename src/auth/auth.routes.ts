import type { EntityManager } from '@mikro-orm/postgresql';
import type { Config } from '../config.js';
import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { User } from '../users/user.entity.js';
import { NotFoundError } from '../errors.js';
import { credentialsSchema, tokenResponseSchema, userSchema, type CredentialsBody } from './auth.schema.js';
import { login, presentUser, register } from './auth.service.js';
import { requireAuth } from './auth.middleware.js';

export function authRoutes(api: ApiRouter, config: Config): void {
  api.route<CredentialsBody>(
    {
      method: 'post',
      path: '/v1/auth/register',
      tag: 'auth',
      summary: 'Create an account and get an access token',
      public: true,
      body: credentialsSchema,
      responses: { 201: { description: 'registered', schema: tokenResponseSchema }, ...errorResponses(409, 413, 415, 422) },
    },
    async (ctx, { body }) => {
      ctx.status = 201;
      ctx.body = await register(ctx.state.em as EntityManager, config, body.email, body.password);
    },
  );

  api.route<CredentialsBody>(
    {
      method: 'post',
      path: '/v1/auth/login',
      tag: 'auth',
      summary: 'Exchange email and password for an access token',
      public: true,
      body: credentialsSchema,
      responses: { 200: { description: 'logged in', schema: tokenResponseSchema }, ...errorResponses(401, 413, 415, 422) },
    },
    async (ctx, { body }) => {
      ctx.body = await login(ctx.state.em as EntityManager, config, body.email, body.password);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/me',
      tag: 'auth',
      summary: 'The authenticated user',
      responses: { 200: { description: 'the user', schema: userSchema }, ...errorResponses(401) },
    },
    async (ctx) => {
      const user = await (ctx.state.em as EntityManager).findOne(User, { id: requireAuth(ctx).id });
      if (!user) throw new NotFoundError('user');
      ctx.body = presentUser(user);
    },
  );
}
