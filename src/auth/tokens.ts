import { createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import type { Config } from '../config.js';

export interface AccessToken {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export function issueToken(config: Config, user: { id: string; role: string }): AccessToken {
  if (!config.jwtSecret) throw new Error('JWT_SECRET is not set: this deployment only accepts tokens from its identity provider');
  const access_token = jwt.sign({ role: user.role }, config.jwtSecret, {
    algorithm: 'HS256',
    subject: user.id,
    expiresIn: config.jwtExpiresIn,
    ...(config.jwtIssuer ? { issuer: config.jwtIssuer } : {}),
    ...(config.jwtAudience ? { audience: config.jwtAudience } : {}),
  });
  return { access_token, token_type: 'Bearer', expires_in: config.jwtExpiresIn };
}

/**
 * The key koa-jwt verifies with: our HS256 secret for tokens we issued, the identity
 * provider's published key (RS256/ES256 via JWKS) for everything else.
 */
export function verificationKey(config: Config): (header: { alg?: string; kid?: string }) => Promise<string> {
  const jwks = config.jwtJwksUrl
    ? jwksRsa.koaJwtSecret({ jwksUri: config.jwtJwksUrl, cache: true, cacheMaxAge: 600_000, rateLimit: true, jwksRequestsPerMinute: 10 })
    : undefined;
  // jsonwebtoken otherwise builds (and first tries to parse as a public key) a key object from
  // the secret on every verify: a measurable share of the API's CPU under load.
  const secretKey = config.jwtSecret ? createSecretKey(Buffer.from(config.jwtSecret, 'utf8')) : undefined;
  return async (header) => {
    if (header.alg === 'HS256') {
      if (!secretKey) throw new Error('HS256 tokens are not accepted');
      return secretKey as unknown as string;
    }
    if (!jwks) throw new Error(`unsupported token algorithm ${header.alg}`);
    return jwks(header as any);
  };
}

export const acceptedAlgorithms = ['HS256', 'RS256', 'ES256'];
