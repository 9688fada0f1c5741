import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

/** An account the test issuer signs in: what its ID token and userinfo say. */
export interface IssuerAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  name?: string;
}

/**
 * A real OpenID Connect provider (`oidc-provider`) on a loopback port, for the sign-in tests. Its
 * login and consent pages are skipped: whoever `signInAs` names is signed in and consents at once.
 */
export async function startOidcIssuer(client: { clientId: string; clientSecret: string; redirectUris: string[] }) {
  const accounts = new Map<string, IssuerAccount>();
  let current: IssuerAccount | null = null;
  let provider: Provider | null = null;
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      void finishInteraction(req, res);
      return;
    }
    provider!.callback()(req, res);
  });

  async function finishInteraction(req: IncomingMessage, res: ServerResponse) {
    try {
      const details = await provider!.interactionDetails(req, res);
      if (!current) throw new Error('the test issuer has no account to sign in: call signInAs first');
      const grant = new provider!.Grant({ accountId: current.sub, clientId: details.params.client_id as string });
      grant.addOIDCScope(String(details.params.scope));
      const grantId = await grant.save();
      await provider!.interactionFinished(req, res, { login: { accountId: current.sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (error) {
      res.statusCode = 500;
      res.end(String(error));
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.clientId,
        client_secret: client.clientSecret,
        redirect_uris: client.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test' }] },
    cookies: { keys: ['test-issuer-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'] },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      return account ? { accountId: sub, claims: () => ({ ...account }) } : undefined;
    },
  });
  return {
    issuer,
    /** The next sign-in at this issuer is `account`'s. */
    signInAs(account: IssuerAccount) {
      accounts.set(account.sub, account);
      current = account;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type OidcIssuer = Awaited<ReturnType<typeof startOidcIssuer>>;
