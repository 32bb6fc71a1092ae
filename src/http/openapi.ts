import { routeCatalog, type RouteSpec } from './api-router.js';

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'details', 'request_id'],
      properties: {
        code: { type: 'string', description: 'stable snake_case error code' },
        message: { type: 'string' },
        details: { type: 'array', items: {} },
        request_id: { type: 'string' },
      },
    },
  },
};

const statusText: Record<number, string> = {
  400: 'malformed JSON',
  401: 'missing, invalid or expired token',
  403: 'forbidden',
  404: 'not found (or not yours)',
  409: 'conflict',
  413: 'body too large',
  415: 'body is not application/json',
  422: 'schema validation failed',
  429: 'rate limited',
  503: 'a dependency is down',
};

export function errorResponses(...statuses: number[]): RouteSpec['responses'] {
  return Object.fromEntries(statuses.map((s) => [s, { description: statusText[s] ?? 'error', schema: errorSchema }]));
}

/** OpenAPI 3.1 accepts JSON Schema 2020-12 as is, so the ajv schemas go in unchanged. */
export function openApiDocument(serverUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routeCatalog) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [...route.path.matchAll(/:(\w+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const query = route.query as { properties?: Record<string, unknown>; required?: string[] } | undefined;
    for (const [name, schema] of Object.entries(query?.properties ?? {})) {
      parameters.push({ name, in: 'query', required: query?.required?.includes(name) ?? false, schema });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(route.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema ? { content: { [r.contentType ?? 'application/json']: { schema: r.schema } } } : {}),
      };
    }
    (paths[path] ??= {})[route.method] = {
      summary: route.summary,
      tags: [route.tag],
      operationId: `${route.method}_${route.path.replace(/[/:{}-]+/g, '_').replace(/^_|_$/g, '')}`,
      ...(route.public ? { security: [] } : {}),
      parameters,
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cadre API',
      version: '1',
      description: 'Self-hosted multi-agent AI platform. Every non-2xx response uses the error body shown on each route.',
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: errorSchema },
    },
    security: [{ bearer: [] }],
    paths,
  };
}
