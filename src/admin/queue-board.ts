import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import type { Config } from '../config.js';
import { Agent } from '../agents/agent.entity.js';
import { authenticate } from '../auth/auth.middleware.js';
import { ForbiddenError } from '../errors.js';
import type { AgentQueues } from '../jobs/agent-queues.js';

export const BOARD_PATH = '/admin/queues';
const COOKIE = 'cadre_admin_token';

/**
 * Bull Board at /admin/queues for admins. Open it once with `?token=<admin JWT>`; the token
 * is then kept in an HttpOnly cookie scoped to the dashboard.
 */
export function queueBoard(deps: { config: Config; orm: MikroORM; queues: AgentQueues }): Middleware {
  const adapter = new KoaAdapter();
  adapter.setBasePath(BOARD_PATH);
  const board = createBullBoard({ queues: [], serverAdapter: adapter, options: { uiConfig: { boardTitle: 'Cadre queues' } } });
  const plugin = adapter.registerPlugin();

  let refreshedAt = 0;
  const refresh = async () => {
    if (Date.now() - refreshedAt < 2000) return;
    refreshedAt = Date.now();
    const agents = await deps.orm.em.fork().find(Agent, {}, { orderBy: { updatedAt: 'desc' }, limit: 1000 });
    board.replaceQueues(
      agents.map(
        (a) =>
          new BullMQAdapter(deps.queues.queue(a.id), {
            displayName: `${a.name} · ${a.id.slice(0, 8)}`,
            description: `agent ${a.id} (concurrency ${a.concurrencyLimit})`,
          }),
      ),
    );
  };

  const auth = authenticate(deps.config, { cookie: COOKIE, queryParam: 'token' });
  const admin = async (ctx: Context, next: Next) => {
    if (ctx.state.auth?.role !== 'admin') throw new ForbiddenError('the queue dashboard is for admins');
    const fromQuery = ctx.query.token;
    if (typeof fromQuery === 'string') {
      ctx.cookies.set(COOKIE, fromQuery, { httpOnly: true, sameSite: 'strict', path: BOARD_PATH, overwrite: true });
    }
    await refresh();
    await next();
  };
  const guarded = compose([auth, admin, plugin as Middleware]);
  return (ctx, next) => (ctx.path === BOARD_PATH || ctx.path.startsWith(`${BOARD_PATH}/`) ? guarded(ctx, next) : next());
}
