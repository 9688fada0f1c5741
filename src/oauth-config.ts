import { ConfigError } from './config';

type Env = Record<string, string | undefined>;

/** A provider that speaks OpenID Connect, found through its discovery document. */
export interface OidcProviderConfig {
  kind: 'oidc';
  issuer: URL;
  clientId: string;
  clientSecret: string;
}

/** GitHub's OAuth app flow and user API; both base URLs configurable so tests can stand in for GitHub. */
export interface GithubProviderConfig {
  kind: 'github';
  /** Where `/login/oauth/authorize` and `/login/oauth/access_token` live (https://github.com). */
  webUrl: URL;
  /** Where `/user` and `/user/emails` live (https://api.github.com). */
  apiUrl: URL;
  clientId: string;
  clientSecret: string;
}

export type OAuthProviderConfig = OidcProviderConfig | GithubProviderConfig;
export const OAUTH_PROVIDERS = ['google', 'github'] as const;
export type OAuthProviderName = (typeof OAUTH_PROVIDERS)[number];

/** Sign-in with providers: each is off unless its client id and secret are set. */
export interface OAuthConfig {
  /** OAUTH_PUBLIC_URL: this server's address as browsers reach it; callbacks are `{it}/api/auth/oauth/{provider}/callback`. */
  publicUrl: URL | null;
  /** OAUTH_REDIRECT_URL: where a finished sign-in sends the browser, the token in the fragment; null: the callback answers JSON. */
  redirectUrl: URL | null;
  providers: Partial<Record<OAuthProviderName, OAuthProviderConfig>>;
}

const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/** An absolute http(s) URL; plain http only for a loopback host outside production (a provider your tests run). */
function secureUrl(env: Env, name: string, production: boolean, fallback?: string): URL | null {
  const raw = env[name]?.trim() || fallback;
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}=${raw} is not a URL: set it to an absolute https:// address.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(`${name}=${raw} is not valid: set it to an absolute https:// address.`);
  }
  if (url.protocol === 'http:' && (production || !LOOPBACK_HOSTS.test(url.hostname))) {
    throw new ConfigError(
      `${name}=${raw} uses plain http: set it to its https:// address (http is accepted only for localhost or 127.0.0.1, and not in production).`,
    );
  }
  if (url.hash || url.username || url.password) {
    throw new ConfigError(`${name}=${raw} carries a fragment or credentials: set it to a plain https:// address.`);
  }
  return url;
}

/** Both halves of a client registration, or neither. */
function clientCredentials(env: Env, prefix: string): { clientId: string; clientSecret: string } | null {
  const clientId = env[`${prefix}_CLIENT_ID`]?.trim() || '';
  const clientSecret = env[`${prefix}_CLIENT_SECRET`]?.trim() || '';
  if (!clientId && !clientSecret) return null;
  if (!clientId || !clientSecret) {
    const missing = clientId ? `${prefix}_CLIENT_SECRET` : `${prefix}_CLIENT_ID`;
    throw new ConfigError(
      `${missing} is not set but ${clientId ? `${prefix}_CLIENT_ID` : `${prefix}_CLIENT_SECRET`} is: set both (from the provider's app registration) to turn ${prefix.toLowerCase()} sign-in on, or unset both to leave it off.`,
    );
  }
  return { clientId, clientSecret };
}

/** Settings that mean nothing without a provider's credentials: set alone, they are a half-done configuration. */
function requireCredentials(env: Env, prefix: string, settings: string[]) {
  const orphan = settings.find((name) => env[name]?.trim());
  if (orphan) {
    throw new ConfigError(
      `${orphan} is set but ${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET are not: set them to turn ${prefix.toLowerCase()} sign-in on, or unset ${orphan}.`,
    );
  }
}

export function oauthConfig(env: Env, production: boolean): OAuthConfig {
  const providers: OAuthConfig['providers'] = {};
  const google = clientCredentials(env, 'GOOGLE');
  if (google) {
    providers.google = { kind: 'oidc', issuer: secureUrl(env, 'GOOGLE_ISSUER', production, 'https://accounts.google.com')!, ...google };
  } else requireCredentials(env, 'GOOGLE', ['GOOGLE_ISSUER']);
  const github = clientCredentials(env, 'GITHUB');
  if (github) {
    providers.github = {
      kind: 'github',
      webUrl: secureUrl(env, 'GITHUB_URL', production, 'https://github.com')!,
      apiUrl: secureUrl(env, 'GITHUB_API_URL', production, 'https://api.github.com')!,
      ...github,
    };
  } else requireCredentials(env, 'GITHUB', ['GITHUB_URL', 'GITHUB_API_URL']);

  const any = Object.keys(providers).length > 0;
  if (!any) {
    const orphan = ['OAUTH_PUBLIC_URL', 'OAUTH_REDIRECT_URL'].find((name) => env[name]?.trim());
    if (orphan) {
      throw new ConfigError(`${orphan} is set but no sign-in provider is: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (or GITHUB_…), or unset ${orphan}.`);
    }
    return { publicUrl: null, redirectUrl: null, providers };
  }
  const publicUrl = secureUrl(env, 'OAUTH_PUBLIC_URL', production);
  if (!publicUrl) {
    throw new ConfigError(
      "OAUTH_PUBLIC_URL is not set but a sign-in provider is: set it to this server's address as browsers reach it (https://chat.example.com), and register {it}/api/auth/oauth/{provider}/callback with the provider.",
    );
  }
  if (publicUrl.search || (publicUrl.pathname !== '/' && publicUrl.pathname.endsWith('/'))) {
    throw new ConfigError(
      `OAUTH_PUBLIC_URL=${publicUrl.href} is not valid: set it to the server's origin (and path prefix, if any) with no query and no trailing slash.`,
    );
  }
  return { publicUrl, redirectUrl: secureUrl(env, 'OAUTH_REDIRECT_URL', production), providers };
}
