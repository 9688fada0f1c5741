import { createHash } from 'node:crypto';

/** A GitHub account as the stand-in's `/user` and `/user/emails` give it. */
export interface GithubAccount {
  id: number;
  login: string;
  name?: string | null;
  emails: { email: string; primary: boolean; verified: boolean }[];
}

/**
 * A stand-in of GitHub's OAuth app endpoints (`/login/oauth/authorize`, `/login/oauth/access_token`,
 * with PKCE) and user API (`/user`, `/user/emails`) on a loopback port. The authorize page signs in
 * whoever `signInAs` names at once. It checks what GitHub checks: the client, its secret, the
 * redirect URI and the code verifier, each code used once.
 */
/** `{"padding":"xxxx…`, 8 MiB with no length announced and never closed: more than anyone should read. */
function hugeAnswer(): Response {
  const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(sent === 0 ? new TextEncoder().encode('{"padding":"') : chunk);
      if (++sent > 128) controller.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'application/json' } });
}

export function startFakeGithub(client: { clientId: string; clientSecret: string }) {
  let current: GithubAccount | null = null;
  let hugeAt: string | null = null;
  const codes = new Map<string, { account: GithubAccount; challenge: string; redirectUri: string }>();
  const tokens = new Map<string, GithubAccount>();
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === hugeAt) return hugeAnswer();
      if (url.pathname === '/login/oauth/authorize') {
        const params = url.searchParams;
        if (params.get('client_id') !== client.clientId || !current) return new Response('unknown client or no account', { status: 400 });
        if (params.get('code_challenge_method') !== 'S256' || !params.get('code_challenge')) return new Response('PKCE required', { status: 400 });
        const code = crypto.randomUUID();
        const redirectUri = params.get('redirect_uri')!;
        codes.set(code, { account: current, challenge: params.get('code_challenge')!, redirectUri });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', params.get('state') ?? '');
        return new Response(null, { status: 302, headers: { location: back.href } });
      }
      if (url.pathname === '/login/oauth/access_token' && request.method === 'POST') {
        const form = new URLSearchParams(await request.text());
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        // GitHub answers its errors with 200 and an `error` field.
        const refuse = (error: string) => Response.json({ error, error_description: error });
        if (form.get('client_id') !== client.clientId || form.get('client_secret') !== client.clientSecret) return refuse('incorrect_client_credentials');
        if (!grant || grant.redirectUri !== form.get('redirect_uri')) return refuse('bad_verification_code');
        const challenge = createHash('sha256')
          .update(form.get('code_verifier') ?? '')
          .digest('base64url');
        if (challenge !== grant.challenge) return refuse('bad_verification_code');
        const token = `gho_${crypto.randomUUID()}`;
        tokens.set(token, grant.account);
        return Response.json({ access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
      }
      const account = tokens.get(/^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1] ?? '');
      if (url.pathname.startsWith('/api/') && !account) return Response.json({ message: 'Bad credentials' }, { status: 401 });
      if (url.pathname === '/api/user') return Response.json({ id: account!.id, login: account!.login, name: account!.name ?? null, email: null });
      if (url.pathname === '/api/user/emails') return Response.json(account!.emails);
      return new Response('not found', { status: 404 });
    },
  });
  return {
    webUrl: `http://127.0.0.1:${server.port}`,
    apiUrl: `http://127.0.0.1:${server.port}/api`,
    signInAs(account: GithubAccount) {
      current = account;
    },
    /** From now on `path` (null: none) answers a huge JSON body with no length, as a broken or hostile provider might. */
    answerHugeAt(path: string | null) {
      hugeAt = path;
    },
    close: () => server.stop(true),
  };
}
