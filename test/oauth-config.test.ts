import { describe, expect, test } from 'bun:test';
import { loadConfig } from '../src/config';
import { configError } from './support/config-errors';

/** Sign-in providers are off unless configured, and a half-done or unsafe configuration stops start-up saying the fix. */

const SECRET = 'config-test-secret-key-that-is-long-enough-0123';
const GOOGLE = { GOOGLE_CLIENT_ID: 'id', GOOGLE_CLIENT_SECRET: 'secret', OAUTH_PUBLIC_URL: 'https://chat.example.com' };
const GITHUB = { GITHUB_CLIENT_ID: 'id', GITHUB_CLIENT_SECRET: 'secret', OAUTH_PUBLIC_URL: 'https://chat.example.com' };

describe('OAuth settings', () => {
  test('no provider is on by default', () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).oauth).toEqual({ publicUrl: null, redirectUrl: null, providers: {} });
  });

  test("Google's id and secret turn it on, at Google's issuer unless GOOGLE_ISSUER names another", () => {
    const { oauth } = loadConfig({ SECRET_KEY: SECRET, ...GOOGLE, OAUTH_REDIRECT_URL: 'https://chat.example.com/signed-in' });
    expect(oauth.providers.google).toMatchObject({ kind: 'oidc', clientId: 'id', clientSecret: 'secret' });
    expect(oauth.providers.google?.kind === 'oidc' && oauth.providers.google.issuer.href).toBe('https://accounts.google.com/');
    expect(oauth.redirectUrl?.href).toBe('https://chat.example.com/signed-in');
    const other = loadConfig({ SECRET_KEY: SECRET, ...GOOGLE, GOOGLE_ISSUER: 'https://login.example.org/realms/team' }).oauth.providers.google;
    expect(other?.kind === 'oidc' && other.issuer.href).toBe('https://login.example.org/realms/team');
  });

  test("GitHub's id and secret turn it on at github.com, its URLs configurable", () => {
    const github = loadConfig({ SECRET_KEY: SECRET, ...GITHUB }).oauth.providers.github;
    expect(github?.kind === 'github' && [github.webUrl.href, github.apiUrl.href]).toEqual(['https://github.com/', 'https://api.github.com/']);
    const enterprise = loadConfig({ SECRET_KEY: SECRET, ...GITHUB, GITHUB_URL: 'https://git.example.com', GITHUB_API_URL: 'https://git.example.com/api/v3' })
      .oauth.providers.github;
    expect(enterprise?.kind === 'github' && enterprise.apiUrl.href).toBe('https://git.example.com/api/v3');
  });

  test.each([
    [{ GOOGLE_CLIENT_ID: 'id', OAUTH_PUBLIC_URL: 'https://chat.example.com' }, 'GOOGLE_CLIENT_SECRET is not set'],
    [{ GITHUB_CLIENT_SECRET: 'secret', OAUTH_PUBLIC_URL: 'https://chat.example.com' }, 'GITHUB_CLIENT_ID is not set'],
    [{ GOOGLE_ISSUER: 'https://login.example.org' }, 'GOOGLE_ISSUER is set but GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET are not'],
    [{ GITHUB_API_URL: 'https://git.example.com/api/v3' }, 'GITHUB_API_URL is set but GITHUB_CLIENT_ID'],
    [{ OAUTH_REDIRECT_URL: 'https://chat.example.com/' }, 'OAUTH_REDIRECT_URL is set but no sign-in provider is'],
    [{ GOOGLE_CLIENT_ID: 'id', GOOGLE_CLIENT_SECRET: 'secret' }, 'OAUTH_PUBLIC_URL is not set'],
    [{ ...GOOGLE, GOOGLE_ISSUER: 'http://login.example.org' }, 'GOOGLE_ISSUER=http://login.example.org uses plain http: set it to its https:// address'],
    [{ ...GITHUB, GITHUB_URL: 'ftp://github.example.com' }, 'GITHUB_URL=ftp://github.example.com is not valid'],
    [{ ...GOOGLE, OAUTH_REDIRECT_URL: 'not a url' }, 'OAUTH_REDIRECT_URL=not a url is not a URL'],
    [{ ...GOOGLE, OAUTH_REDIRECT_URL: 'https://chat.example.com/#done' }, 'carries a fragment'],
    [{ ...GOOGLE, OAUTH_PUBLIC_URL: 'https://chat.example.com/?x=1' }, 'no query and no trailing slash'],
  ])('%p is a ConfigError that says the fix', (env, message) => {
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, ...env })).message).toContain(message);
  });

  test('plain http is accepted for a loopback issuer outside production (a provider run by tests), never in production', () => {
    const local = { ...GOOGLE, GOOGLE_ISSUER: 'http://127.0.0.1:4000', OAUTH_PUBLIC_URL: 'http://localhost:8000' };
    expect(loadConfig({ SECRET_KEY: SECRET, ...local }).oauth.providers.google).toBeDefined();
    const error = configError(() => loadConfig({ SECRET_KEY: SECRET.repeat(2), NODE_ENV: 'production', ...local }));
    expect(error.message).toContain('not in production');
  });
});
