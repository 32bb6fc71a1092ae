import type { EntityManager } from '@mikro-orm/postgresql';
import type { Context, Middleware, Next } from 'koa';
import koaJwt from 'koa-jwt';
import compose from 'koa-compose';
import type { Config } from '../config.js';
import { resolveTokenUser } from './auth.service.js';
import { acceptedAlgorithms, verificationKey } from './tokens.js';

export interface AuthUser {
  id: string;
  email: string;
  role: 'user' | 'admin';
}

/** koa-jwt verifies the token; we then resolve its subject to a live user (or 401). */
export function authenticate(config: Config, options: { cookie?: string; queryParam?: string } = {}): Middleware {
  const verify = koaJwt({
    secret: verificationKey(config) as any,
    // Browsers cannot send a Bearer header when opening a dashboard: allow a cookie or query token there.
    ...(options.cookie ? { cookie: options.cookie } : {}),
    ...(options.queryParam ? { getToken: (ctx: any) => (typeof ctx.query[options.queryParam!] === 'string' ? ctx.query[options.queryParam!] : null) } : {}),
    algorithms: acceptedAlgorithms,
    key: 'jwt',
    ...(config.jwtIssuer ? { issuer: config.jwtIssuer } : {}),
    ...(config.jwtAudience ? { audience: config.jwtAudience } : {}),
  });
  const load = async (ctx: Context, next: Next) => {
    const user = await resolveTokenUser(ctx.state.em as EntityManager, config, ctx.state.jwt);
    if (!user) ctx.throw(401, 'user not found', { originalError: { code: 'user_not_found' } });
    ctx.state.auth = user satisfies AuthUser;
    await next();
  };
  return compose([verify as unknown as Middleware, load]) as Middleware;
}

export function requireAuth(ctx: Context): AuthUser {
  return ctx.state.auth as AuthUser;
}
