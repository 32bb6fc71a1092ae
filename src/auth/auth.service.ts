import type { EntityManager } from '@mikro-orm/postgresql';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Config } from '../config.js';
import { ConflictError, UnauthorizedError } from '../errors.js';
import { isUuid } from '../db/ids.js';
import { User, type IUser } from '../users/user.entity.js';
import { dummyPasswordHash, hashPassword, verifyPassword } from './password.js';
import { issueToken, type AccessToken } from './tokens.js';
import type { AuthUser } from './auth.middleware.js';

export function presentUser(user: IUser) {
  return { id: user.id, email: user.email, role: user.role, created_at: user.createdAt.toISOString() };
}

const normalizeEmail = (email: string) => email.trim().toLowerCase();

function roleFor(config: Config, email: string, current = 'user'): string {
  return config.adminEmails.includes(email) ? 'admin' : current;
}

export async function register(em: EntityManager, config: Config, email: string, password: string) {
  const normalized = normalizeEmail(email);
  const user = em.create(User, {
    email: normalized,
    passwordHash: await hashPassword(password),
    role: roleFor(config, normalized),
  });
  try {
    await em.flush();
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) {
      throw new ConflictError('email_taken', 'an account with this email already exists');
    }
    throw err;
  }
  return { user: presentUser(user), ...issueToken(config, user) };
}

export async function login(em: EntityManager, config: Config, email: string, password: string) {
  const normalized = normalizeEmail(email);
  const user = await em.findOne(User, { email: normalized });
  // Verify against a dummy hash for unknown emails so both failures cost the same time.
  const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyPasswordHash()));
  if (!user || !user.passwordHash || !ok) throw new UnauthorizedError('invalid_credentials', 'email or password is incorrect');
  const role = roleFor(config, normalized, user.role);
  if (role !== user.role) {
    user.role = role;
    await em.flush();
  }
  return { user: presentUser(user), ...issueToken(config, user) } satisfies { user: unknown } & AccessToken;
}

/**
 * Our own tokens carry the user id as `sub`. Tokens from an external identity provider are
 * matched (and on first sight provisioned) by their `email` claim. Linking to an account that
 * has a password needs `email_verified: true`, or anyone able to get an unverified address
 * from the provider could take that account over.
 */
export async function resolveTokenUser(em: EntityManager, config: Config, claims: any): Promise<AuthUser | null> {
  if (!claims || typeof claims.sub !== 'string') return null;
  let user: IUser | null = null;
  if (isUuid(claims.sub)) user = await em.findOne(User, { id: claims.sub });
  if (!user && config.jwtJwksUrl && typeof claims.email === 'string') {
    if (claims.email_verified === false) return null;
    const email = normalizeEmail(claims.email);
    user = await em.findOne(User, { email });
    if (user?.passwordHash && claims.email_verified !== true) return null;
    if (!user) {
      user = em.create(User, { email, passwordHash: null, role: roleFor(config, email) });
      try {
        await em.flush();
      } catch (err) {
        if (!(err instanceof UniqueConstraintViolationException)) throw err;
        em.clear(); // a concurrent first request provisioned it
        user = await em.findOne(User, { email });
      }
    }
  }
  if (!user) return null;
  return { id: user.id, email: user.email, role: user.role === 'admin' ? 'admin' : 'user' };
}

export async function setRole(em: EntityManager, email: string, role: 'user' | 'admin'): Promise<boolean> {
  const user = await em.findOne(User, { email: normalizeEmail(email) });
  if (!user) return false;
  user.role = role;
  await em.flush();
  return true;
}
