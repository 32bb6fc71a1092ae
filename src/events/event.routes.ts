import type { ApiRouter } from '../http/api-router.js';
import { errorResponses } from '../http/openapi.js';
import { requireAuth } from '../auth/auth.middleware.js';
import { getSession } from '../sessions/session.service.js';
import { ValidationError } from '../errors.js';
import type { SessionStreams } from './event-stream.js';

const eventsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    last_event_id: { type: 'string', pattern: '^\\d{1,15}$' },
    format: { enum: ['sse', 'ndjson'] },
  },
} as const;

export function eventRoutes(api: ApiRouter, streams: SessionStreams, heartbeatMs: number): void {
  api.route<unknown, { last_event_id?: string; format?: 'sse' | 'ndjson' }>(
    {
      method: 'get',
      path: '/v1/sessions/:id/events',
      tag: 'events',
      summary:
        'Live events of a session as SSE (Accept: text/event-stream) or NDJSON. With Last-Event-ID (or ?last_event_id=) retained events after that id are replayed first; 0 replays everything retained.',
      query: eventsQuerySchema,
      responses: {
        200: { description: 'event stream', contentType: 'text/event-stream', schema: { type: 'string' } },
        ...errorResponses(401, 404, 422),
      },
    },
    async (ctx, { params, query }) => {
      const session = await getSession(ctx.state.em, requireAuth(ctx).id, params.id!);
      const header = ctx.get('Last-Event-ID');
      if (header && !/^\d{1,15}$/.test(header)) {
        throw new ValidationError([{ path: 'Last-Event-ID', message: 'must be a non-negative integer', keyword: 'pattern' }]);
      }
      const raw = header || query.last_event_id;
      // SSE only when asked for by name: a client accepting anything gets NDJSON.
      const format = query.format ?? (ctx.get('Accept').includes('text/event-stream') ? 'sse' : 'ndjson');
      const stream = await streams.connect({
        sessionId: session.id,
        format,
        lastEventId: raw === undefined ? undefined : Number(raw),
        heartbeatMs,
      });
      ctx.req.socket.setNoDelay(true);
      ctx.req.socket.setTimeout(0);
      ctx.req.once('close', () => stream.destroy());
      ctx.status = 200;
      ctx.type = format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8';
      ctx.set('Cache-Control', 'no-cache, no-transform');
      ctx.set('Connection', 'keep-alive');
      ctx.set('X-Accel-Buffering', 'no');
      ctx.body = stream;
      // Send headers now: an NDJSON client must not wait for the first event to learn it is connected.
      ctx.flushHeaders();
    },
  );
}
