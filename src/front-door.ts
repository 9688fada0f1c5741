import type { Env, Hono } from 'hono';

/**
 * `GET /`: where to go from here. A browser gets a page of links; anything else gets them as JSON,
 * `{"name": …, "links": {…}}`.
 */

interface FrontDoorOptions {
  name: string;
  /** GraphiQL is served outside production only. */
  graphiql: boolean;
}

const LABELS = {
  graphiql: 'GraphiQL: the GraphQL API in the browser',
  docs: 'REST API documentation',
  openapi: 'OpenAPI document of the REST API',
  health: 'Health',
};

function frontDoorLinks({ graphiql }: Pick<FrontDoorOptions, 'graphiql'>): Partial<Record<keyof typeof LABELS, string>> {
  return { ...(graphiql ? { graphiql: '/graphql' } : {}), docs: '/docs', openapi: '/openapi.json', health: '/health' };
}

// The page has no script, style or image of its own.
const PAGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function page(name: string, links: ReturnType<typeof frontDoorLinks>): string {
  const items = Object.entries(links).map(([key, href]) => `      <li><a href="${href}">${LABELS[key as keyof typeof LABELS]}</a></li>`);
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${name}</title>
  </head>
  <body>
    <h1>${name}</h1>
    <p>Chat rooms where anyone can ask Gemini with <code>/bot</code>.</p>
    <ul>
${items.join('\n')}
    </ul>
  </body>
</html>
`;
}

/** Adds `GET /` to `site`. */
export function serveFrontDoor<E extends Env>(site: Hono<E>, options: FrontDoorOptions): void {
  const links = frontDoorLinks(options);
  const html = page(options.name, links);
  site.get('/', (c) => {
    // One URL, two representations: a cache must keep them apart.
    const headers = { Vary: 'Accept' };
    if (c.req.header('accept')?.includes('text/html')) {
      return new Response(html, { headers: { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': PAGE_CSP } });
    }
    return Response.json({ name: options.name, links }, { headers });
  });
}
