import type { EntityManager } from '@mikro-orm/postgresql';
import type { Context, Middleware, Next } from 'koa';
import koaJwt from 'koa-jwt';
import { LRUCache } from 'lru-cache';
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
  // A user looked up in the last few seconds is not looked up again: one query less per
  // request. A deleted user or a role change therefore takes up to USER_CACHE_MS to apply.
  const users = new LRUCache<string, AuthUser>({ max: 10_000, ttl: config.userCacheMs });
  const load = async (ctx: Context, next: Next) => {
    const claims = ctx.state.jwt;
    const key = config.userCacheMs > 0 && typeof claims?.sub === 'string' ? `${claims.sub}|${claims.email ?? ''}` : undefined;
    let user = key ? users.get(key) : undefined;
    if (!user) {
      user = (await resolveTokenUser(ctx.state.em as EntityManager, config, claims)) ?? undefined;
      if (user && key) users.set(key, user);
    }
    if (!user) ctx.throw(401, 'user not found', { originalError: { code: 'user_not_found' } });
    ctx.state.auth = user satisfies AuthUser;
    await next();
  };
  return compose([verify as unknown as Middleware, load]) as Middleware;
}

export function requireAuth(ctx: Context): AuthUser {
  return ctx.state.auth as AuthUser;
}
