import type { Hono } from 'hono';
import type { OpenAPIHono } from '@hono/zod-openapi';
import packageJson from '../../package.json' with { type: 'json' };
import type { RestEnv } from './api';

/**
 * `/openapi.json` (the REST API's OpenAPI 3.1 document) and `/docs` (Swagger UI over it), served
 * from the installed swagger-ui-dist: the page loads nothing from anywhere else.
 */

const swaggerUiFile = (name: string) => Bun.fileURLToPath(import.meta.resolve(`swagger-ui-dist/${name}`));
const swaggerUiCss = swaggerUiFile('swagger-ui.css');
const swaggerUiBundle = swaggerUiFile('swagger-ui-bundle.js');
// A file rather than an inline script, so the page's CSP can refuse inline code.
const startSwaggerUi =
  "SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', presets: [SwaggerUIBundle.presets.apis], deepLinking: true, validatorUrl: null });\n";

// Each file served is named here: no part of a request's path picks a file.
const ASSETS: Record<string, () => Response> = {
  '/docs/assets/swagger-ui.css': () => new Response(Bun.file(swaggerUiCss)),
  '/docs/assets/swagger-ui-bundle.js': () => new Response(Bun.file(swaggerUiBundle)),
  '/docs/assets/start.js': () => new Response(startSwaggerUi, { headers: { 'Content-Type': 'text/javascript; charset=utf-8' } }),
};

// Swagger UI's stylesheet draws its icons from data: URLs; "Try it out" calls this same origin.
const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const docsPage = (title: string) => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${title} REST API</title>
    <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/assets/swagger-ui-bundle.js"></script>
    <script src="/docs/assets/start.js"></script>
  </body>
</html>
`;

/** Adds `/openapi.json`, `/docs` and the page's assets to `site`, documenting `api`. */
export function serveDocs(site: Hono<RestEnv>, api: OpenAPIHono<RestEnv>, title: string): void {
  const document = api.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title,
      version: packageJson.version,
      description:
        'The REST API of the original FastAPI service, unchanged: errors are `{"detail": "…"}`, and 422 carries FastAPI\'s list of `{type, loc, msg}`. GraphQL is at `/graphql`, real-time messages at `/ws`.',
    },
  });
  site.get('/openapi.json', () => Response.json(document));
  const page = docsPage(title);
  site.get('/docs', () => new Response(page, { headers: { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': DOCS_CSP } }));
  for (const [path, serve] of Object.entries(ASSETS)) site.get(path, serve);
}
