import * as client from 'openid-client';
import type { GithubProviderConfig, OAuthProviderName, OidcProviderConfig } from '../../oauth-config';
import { AppError } from '../errors';

/** Who the provider says signed in. `email` counts for linking and sign-up only when `emailVerified`. */
export interface ProviderProfile {
  subject: string;
  email: string | null;
  emailVerified: boolean;
  /** What a new account's username is made from, best first (login, preferred_username, name, email). */
  usernameHints: string[];
}

/** What a sign-in keeps between its start and its callback. */
export interface SignInChecks {
  state: string;
  codeVerifier: string;
  nonce: string | null;
}

/** One provider's half of the authorization code flow; openid-client does every protocol check. */
export interface SignInProvider {
  readonly name: OAuthProviderName;
  /** Whether the flow carries an OpenID Connect nonce. */
  readonly usesNonce: boolean;
  authorizationUrl(redirectUri: string, checks: SignInChecks): Promise<URL>;
  /**
   * Exchanges the code the callback URL carries (state, PKCE and nonce checked) and reads the profile.
   * `callbackUrl` is the registered redirect URI with the provider's query: openid-client sends it, query stripped, as `redirect_uri`.
   */
  finish(callbackUrl: URL, checks: SignInChecks): Promise<ProviderProfile>;
}

/** A refusal from the provider or of its answer: the sign-in must start again. */
export class SignInFailedError extends AppError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

const insecure = (url: URL) => (url.protocol === 'http:' ? [client.allowInsecureRequests] : []);

/** The most a provider's answer may hold: a discovery document, a key set, tokens or a profile are a few KiB. */
export const MAX_PROVIDER_ANSWER_BYTES = 1024 * 1024;

/**
 * fetch for openid-client that stops reading an answer past MAX_PROVIDER_ANSWER_BYTES: a broken or
 * hostile provider cannot fill this server's memory. (openid-client's own timeout, 30 s a request, bounds the time.)
 */
function cappedFetch(provider: string): client.CustomFetch {
  const tooLarge = () =>
    new AppError('SERVICE_UNAVAILABLE', `${provider} answered more than ${MAX_PROVIDER_ANSWER_BYTES} bytes: try again shortly`, undefined, 5);
  return async (url, options) => {
    const response = await fetch(url, options as RequestInit);
    if (Number(response.headers.get('content-length') ?? 0) > MAX_PROVIDER_ANSWER_BYTES) {
      await response.body?.cancel();
      throw tooLarge();
    }
    if (!response.body) return response;
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_PROVIDER_ANSWER_BYTES) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
    return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/** Maps openid-client's failures: the provider's or the answer's refusal is the client's 400, an unreachable provider a 503. */
async function guarded<T>(provider: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AppError) throw error;
    // openid-client wraps what its fetch threw (cappedFetch's refusal).
    if ((error as { cause?: unknown }).cause instanceof AppError) throw (error as { cause: AppError }).cause;
    if (error instanceof client.AuthorizationResponseError || error instanceof client.ResponseBodyError) {
      throw new SignInFailedError(`${provider} refused the sign-in (${error.error}): start again`);
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('OAUTH_')) {
      // A claim that failed its check (nonce, iss, aud) is named: the message alone does not say which.
      // openid-client wraps oauth4webapi's error, whose cause names the claim.
      const inner = (error as { cause?: { claim?: unknown; cause?: { claim?: unknown } } }).cause;
      const claim = inner?.claim ?? inner?.cause?.claim;
      const what = typeof claim === 'string' ? `the ID token's ${claim} is not the expected one` : (error as Error).message;
      throw new SignInFailedError(`${provider} sign-in could not be checked (${what}): start again`);
    }
    throw new AppError('SERVICE_UNAVAILABLE', `${provider} did not answer: try again shortly`, undefined, 5);
  }
}

/** Any OpenID Connect provider (Google by default), configured from its discovery document on first use. */
export class OidcSignIn implements SignInProvider {
  readonly usesNonce = true;
  private configuration: Promise<client.Configuration> | null = null;

  constructor(
    readonly name: OAuthProviderName,
    private readonly settings: OidcProviderConfig,
  ) {}

  /** Discovery runs once; a failed one is forgotten so the next sign-in tries again. */
  private config(): Promise<client.Configuration> {
    this.configuration ??= client
      .discovery(this.settings.issuer, this.settings.clientId, undefined, client.ClientSecretBasic(this.settings.clientSecret), {
        execute: insecure(this.settings.issuer),
        [client.customFetch]: cappedFetch(this.name),
      })
      .catch((error: unknown) => {
        this.configuration = null;
        throw error;
      });
    return this.configuration;
  }

  authorizationUrl(redirectUri: string, checks: SignInChecks): Promise<URL> {
    return guarded(this.name, async () =>
      client.buildAuthorizationUrl(await this.config(), {
        redirect_uri: redirectUri,
        scope: 'openid email profile',
        state: checks.state,
        nonce: checks.nonce!,
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
      }),
    );
  }

  finish(callbackUrl: URL, checks: SignInChecks): Promise<ProviderProfile> {
    return guarded(this.name, async () => {
      const config = await this.config();
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce!,
        idTokenExpected: true,
      });
      const idToken = tokens.claims()!;
      // Providers may keep email and profile claims out of the ID token and give them at userinfo instead.
      const claims: Record<string, unknown> =
        typeof idToken.email === 'string' ? idToken : { ...(await client.fetchUserInfo(config, tokens.access_token, idToken.sub)), sub: idToken.sub };
      const email = typeof claims.email === 'string' ? claims.email.toLowerCase() : null;
      return {
        subject: idToken.sub,
        email,
        emailVerified: email !== null && claims.email_verified === true,
        usernameHints: [claims.preferred_username, claims.nickname, claims.name, email?.split('@')[0]].filter(
          (hint): hint is string => typeof hint === 'string',
        ),
      };
    });
  }
}

interface GithubUser {
  id: number;
  login: string;
  name: string | null;
}
interface GithubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}

/** GitHub's OAuth app flow (with PKCE) and its user API: the profile from `/user`, the verified primary email from `/user/emails`. */
export class GithubSignIn implements SignInProvider {
  readonly name = 'github' as const;
  readonly usesNonce = false;
  private readonly config: client.Configuration;

  constructor(private readonly settings: GithubProviderConfig) {
    const server: client.ServerMetadata = {
      issuer: settings.webUrl.origin,
      authorization_endpoint: new URL('login/oauth/authorize', withSlash(settings.webUrl)).href,
      token_endpoint: new URL('login/oauth/access_token', withSlash(settings.webUrl)).href,
    };
    this.config = new client.Configuration(server, settings.clientId, undefined, client.ClientSecretPost(settings.clientSecret));
    this.config[client.customFetch] = cappedFetch(this.name);
    if (settings.webUrl.protocol === 'http:' || settings.apiUrl.protocol === 'http:') client.allowInsecureRequests(this.config);
  }

  authorizationUrl(redirectUri: string, checks: SignInChecks): Promise<URL> {
    return guarded(this.name, async () =>
      client.buildAuthorizationUrl(this.config, {
        redirect_uri: redirectUri,
        scope: 'read:user user:email',
        state: checks.state,
        code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
        code_challenge_method: 'S256',
        allow_signup: 'true',
      }),
    );
  }

  finish(callbackUrl: URL, checks: SignInChecks): Promise<ProviderProfile> {
    return guarded(this.name, async () => {
      const tokens = await client.authorizationCodeGrant(this.config, callbackUrl, { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state });
      const user = await this.api<GithubUser>(tokens.access_token, 'user');
      const emails = await this.api<GithubEmail[]>(tokens.access_token, 'user/emails');
      const primary = emails.find((entry) => entry.primary) ?? null;
      const email = primary?.email.toLowerCase() ?? null;
      if (typeof user.id !== 'number') throw new SignInFailedError('github gave no user id: start again');
      return {
        subject: String(user.id),
        email,
        emailVerified: primary?.verified === true,
        usernameHints: [user.login, user.name, email?.split('@')[0]].filter((hint): hint is string => typeof hint === 'string'),
      };
    });
  }

  private async api<T>(accessToken: string, path: string): Promise<T> {
    const url = new URL(path, withSlash(this.settings.apiUrl));
    const headers = new Headers({ accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' });
    const response = await client.fetchProtectedResource(this.config, accessToken, url, 'GET', undefined, headers);
    if (!response.ok) throw new SignInFailedError(`github's ${path} answered ${response.status}: start again`);
    return (await response.json()) as T;
  }
}

const withSlash = (url: URL) => (url.href.endsWith('/') ? url : new URL(`${url.href}/`));
