import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { compile, type JsonSchema } from './validation.js';

export type Method = 'get' | 'post' | 'patch' | 'put' | 'delete';

export interface RouteSpec {
  method: Method;
  /** Koa-router path, e.g. `/v1/agents/:id`. */
  path: string;
  summary: string;
  tag: string;
  /** Public routes skip authentication. Default: false. */
  public?: boolean;
  body?: JsonSchema;
  query?: JsonSchema;
  /** Status → response schema (undefined for an empty body). */
  responses: Record<number, { description: string; schema?: JsonSchema; contentType?: string }>;
}

export interface RouteInput<B, Q> {
  body: B;
  query: Q;
  params: Record<string, string>;
}

/** Every route registered here; the OpenAPI document is generated from this list. */
export const routeCatalog: RouteSpec[] = [];

/**
 * A @koa/router wrapper that validates bodies and queries with the same ajv schemas that
 * the OpenAPI document publishes, so the docs cannot drift from what is enforced.
 */
export class ApiRouter {
  readonly router = new Router();

  constructor(private readonly auth: Middleware) {}

  route<B = any, Q = any>(spec: RouteSpec, handler: (ctx: Context, input: RouteInput<B, Q>) => Promise<void>): void {
    if (!routeCatalog.some((r) => r.method === spec.method && r.path === spec.path)) routeCatalog.push(spec);
    const validateBody = spec.body ? compile<B>(spec.body, 'body') : undefined;
    const validateQuery = compile<Q>(spec.query ?? { type: 'object', additionalProperties: true }, 'query');
    const stack: Middleware[] = [];
    if (!spec.public) stack.push(this.auth);
    stack.push(async (ctx) => {
      const query = validateQuery({ ...ctx.query });
      let body = (ctx.request as any).body as unknown;
      if (validateBody) {
        if (body === undefined) body = {};
        body = validateBody(body);
      }
      await handler(ctx, { body: body as B, query, params: ctx.params as Record<string, string> });
    });
    this.router.register(spec.path, [spec.method], stack as any, { name: `${spec.method} ${spec.path}` });
  }
}
