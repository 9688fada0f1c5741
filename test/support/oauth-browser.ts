import { expect } from 'bun:test';

/** What the test apps call themselves: callbacks land on `${PUBLIC_URL}/api/auth/oauth/{provider}/callback`. */
export const PUBLIC_URL = 'http://localhost:8000';

/** Where the browser sends the app's requests: a test app in-process, or an instance over HTTP. */
export interface OAuthTarget {
  request(path: string, init?: RequestInit): Promise<Response>;
}

/**
 * A browser going through a sign-in, one step at a time, so a test can tamper between steps. The
 * app is called through `app` (which a test may switch to another instance mid-flow); the provider
 * (a loopback server) over real HTTP, with a cookie jar.
 */
export class OAuthBrowser {
  private readonly providerCookies = new Map<string, string>();
  /** The app's cookies this browser holds (the state cookie). */
  readonly appCookies = new Map<string, string>();

  constructor(public app: OAuthTarget) {}

  /** `GET /start`: the provider's authorization URL; the state cookie is kept. */
  async start(provider: string): Promise<URL> {
    const response = await this.app.request(`/api/auth/oauth/${provider}/start`, { redirect: 'manual' });
    expect(response.status).toBe(302);
    this.keep(this.appCookies, response);
    return new URL(response.headers.get('location')!);
  }

  /** Follows the provider's redirects (it signs its chosen account in at once) until it sends the browser back to the app. */
  async authorize(authorizationUrl: URL): Promise<URL> {
    let url = authorizationUrl;
    for (let hop = 0; hop < 10; hop++) {
      if (url.href.startsWith(PUBLIC_URL)) return url;
      const cookie = [...this.providerCookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      this.keep(this.providerCookies, response);
      const location = response.headers.get('location');
      if (!location) throw new Error(`the provider answered ${response.status} at ${url.href}: ${await response.text()}`);
      url = new URL(location, url);
    }
    throw new Error('the provider never sent the browser back');
  }

  /** The provider's redirect, sent to the app in-process with this browser's cookies. */
  callback(callbackUrl: URL, headers: Record<string, string> = { accept: 'application/json' }): Promise<Response> {
    const cookie = [...this.appCookies].map(([name, value]) => `${name}=${value}`).join('; ');
    return this.app.request(`${callbackUrl.pathname}${callbackUrl.search}`, { redirect: 'manual', headers: { ...headers, ...(cookie ? { cookie } : {}) } });
  }

  /** The whole flow: start, the provider, the callback (JSON unless `headers` say otherwise). */
  async signIn(provider: string, headers?: Record<string, string>): Promise<Response> {
    return this.callback(await this.authorize(await this.start(provider)), headers);
  }

  private keep(jar: Map<string, string>, response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = pair!.split('=');
      const maxAge = /max-age=(\d+)/i.exec(line)?.[1];
      if (maxAge === '0' || /expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(name!.trim());
      else jar.set(name!.trim(), value.join('='));
    }
  }
}
