import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import { openApiDocument } from './openapi.js';

const require = createRequire(import.meta.url);
const swaggerDir = dirname(require.resolve('swagger-ui-dist/package.json'));
const assets: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'application/javascript; charset=utf-8',
};

const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cadre API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/assets/init.js"></script>
</body></html>`;
// Separate file so the page works under a script-src 'self' Content-Security-Policy.
const init = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });`;

/** `/openapi.json` (generated from the route catalog) and Swagger UI at `/docs`, served locally. */
export function docsRouter(publicUrl: string): Router {
  const router = new Router();
  let cached: string | undefined;
  router.get('/openapi.json', (ctx) => {
    cached ??= JSON.stringify(openApiDocument(publicUrl));
    ctx.type = 'application/json';
    ctx.body = cached;
  });
  router.get('/docs', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = page;
  });
  router.get('/docs/assets/init.js', (ctx) => {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.body = init;
  });
  router.get('/docs/assets/:file', async (ctx) => {
    const type = assets[ctx.params.file!];
    if (!type) return;
    ctx.type = type;
    ctx.set('Cache-Control', 'public, max-age=86400');
    ctx.body = await readFile(join(swaggerDir, ctx.params.file!));
  });
  return router;
}
