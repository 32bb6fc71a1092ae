import { randomUUID } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware, Next } from 'koa';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function errorBody(ctx: Context, code: string, message: string, details: unknown[] = []) {
  return { error: { code, message, details, request_id: ctx.state.requestId as string } };
}

/** Assigns the request id (the client's, when it sent a sane one) and a child logger. */
export function requestContext(logger: Logger): Middleware {
  return async (ctx: Context, next: Next) => {
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    ctx.state.log = logger.child({ request_id: requestId });
    await next();
  };
}

/** One log line per request: method, matched route, status, duration and user. */
export function accessLog(): Middleware {
  return async (ctx: Context, next: Next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      const log: Logger = ctx.state.log;
      const line = {
        method: ctx.method,
        route: (ctx as any)._matchedRoute ?? null,
        path: ctx.path,
        status: ctx.status,
        duration_ms: Math.round((performance.now() - start) * 100) / 100,
        user_id: ctx.state.auth?.id ?? null,
      };
      if (ctx.status >= 500) log.error(line, 'request failed');
      else log.info(line, 'request');
    }
  };
}

function jwtCode(err: any): { code: string; message: string } {
  const original = err?.originalError;
  if (!original) return { code: 'unauthorized', message: 'missing bearer token' };
  if (original.name === 'TokenExpiredError') return { code: 'token_expired', message: 'token has expired' };
  if (original.code === 'user_not_found') return { code: 'invalid_token', message: 'token subject no longer exists' };
  return { code: 'invalid_token', message: 'token is invalid' };
}

/**
 * The body parser pauses the request when it gives up (too large, broken JSON), and Node
 * then leaves the unread rest of the body on the keep-alive socket, so the client's next
 * request there would hang. Discard the rest instead, as Node does for unread bodies.
 */
function drainUnreadBody(ctx: Context): void {
  if (!ctx.req.complete) ctx.req.resume();
}

/** Turns every error into API.md's error body with a stable code. */
export function errorHandler(): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = errorBody(ctx, 'route_not_found', `no route for ${ctx.method} ${ctx.path}`);
      } else if (ctx.status === 405 && !ctx.body) {
        ctx.status = 405; // allowedMethods() already set the Allow header
        ctx.body = errorBody(ctx, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}`);
      }
    } catch (err: any) {
      drainUnreadBody(ctx);
      if (err instanceof AppError) {
        ctx.status = err.status;
        for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
        ctx.body = errorBody(ctx, err.code, err.message, err.details);
        return;
      }
      const status: number = err?.status ?? err?.statusCode ?? 500;
      let code = 'internal_error';
      let message = 'internal server error';
      if (status === 401) ({ code, message } = jwtCode(err));
      else if (status === 400 && (err.type === 'entity.parse.failed' || err instanceof SyntaxError)) {
        code = 'malformed_json';
        message = 'request body is not valid JSON';
      } else if (status === 413) {
        code = 'payload_too_large';
        message = 'request body is too large';
      } else if (status === 415) {
        code = 'unsupported_media_type';
        message = 'request body must be application/json';
      } else if (status === 405) {
        code = 'method_not_allowed';
        message = `${ctx.method} is not allowed on ${ctx.path}`;
      } else if (status === 501) {
        code = 'not_implemented';
        message = `${ctx.method} is not implemented`;
      } else if (status >= 400 && status < 500) {
        code = 'bad_request';
        message = err.expose ? err.message : 'bad request';
      } else {
        (ctx.state.log as Logger | undefined)?.error({ err }, 'unhandled error');
      }
      ctx.status = status >= 400 && status < 600 ? status : 500;
      if (err?.headers) for (const [k, v] of Object.entries(err.headers as Record<string, string>)) ctx.set(k, v);
      ctx.body = errorBody(ctx, code, message);
    }
  };
}

/** JSON bodies only; anything else with a body is 415, oversize is 413, broken JSON is 400. */
export function jsonBody(limitBytes: number): Middleware {
  const parse = bodyParser({ enableTypes: ['json'], jsonLimit: limitBytes, jsonStrict: true, encoding: 'utf-8' });
  return async (ctx: Context, next: Next) => {
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(ctx.method)) {
      const length = Number(ctx.get('Content-Length') || 0);
      const hasBody = length > 0 || Boolean(ctx.get('Transfer-Encoding'));
      if (hasBody && !ctx.is('application/json', '+json')) ctx.throw(415);
      if (length > limitBytes) ctx.throw(413);
      if (!hasBody) return next();
    }
    return parse(ctx, next);
  };
}
