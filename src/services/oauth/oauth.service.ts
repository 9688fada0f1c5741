import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Database } from '../../db/client';
import type { OAuthConfig, OAuthProviderName } from '../../oauth-config';
import { OAUTH_PROVIDERS } from '../../oauth-config';
import type { AuthService, PublicUser } from '../auth.service';
import type { WindowCounter } from '../rate-limit';
import { isUniqueViolation, publicUserSelect } from '../auth.service';
import { AppError } from '../errors';
import { oauthLinkInput, oauthProviderInput, parseInput } from '../validation';
import type { ProviderProfile, SignInChecks, SignInProvider } from './providers';
import { GithubSignIn, OidcSignIn, SignInFailedError } from './providers';

/** How long a started sign-in may take at the provider, and a link request may wait for its user's confirmation. */
export const SIGN_IN_TTL_MS = 10 * 60_000;
export const LINK_TTL_MS = 10 * 60_000;

/** A provider account linked to a user, as `me` shows it. */
export interface LinkedIdentity {
  provider: string;
  email: string | null;
  createdAt: Date;
}

/** The ways a user can sign in: a password, and each linked provider. */
export interface SignInMethods {
  hasPassword: boolean;
  identities: LinkedIdentity[];
}

/**
 * What a finished callback gives: a signed-in user (`created` when the identity made the account), or
 * a link request: the identity's verified email belongs to an existing user, who must sign in and
 * confirm with `linkToken` before the identity signs in to that account.
 */
export type SignInResult =
  | { kind: 'signed_in'; user: PublicUser; token: string; created: boolean }
  | { kind: 'link_required'; provider: OAuthProviderName; email: string; linkToken: string };

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const identitySelect = { provider: true, email: true, createdAt: true } as const;
const USERNAME_ATTEMPTS = 5;

export class UnknownProviderError extends AppError {
  constructor() {
    super('NOT_FOUND', 'Unknown or disabled sign-in provider');
  }
}

/**
 * Sign-in with providers (authorization code + PKCE, OpenID Connect nonce) and the linking rules.
 * Pending sign-ins and link requests live in the database, so a callback or a confirmation may reach
 * any instance, and each is claimed once.
 */
export class OAuthService {
  private readonly providers = new Map<OAuthProviderName, SignInProvider>();

  constructor(
    private readonly db: Database,
    private readonly auth: AuthService,
    private readonly config: OAuthConfig,
    /** OAUTH_START_RATE_LIMIT: sign-ins started per client address, since each stores a row until it expires. */
    private readonly starts: WindowCounter,
  ) {
    for (const [name, settings] of Object.entries(config.providers) as [OAuthProviderName, OAuthConfig['providers'][OAuthProviderName]][]) {
      if (settings?.kind === 'oidc') this.providers.set(name, new OidcSignIn(name, settings));
      if (settings?.kind === 'github') this.providers.set(name, new GithubSignIn(settings));
    }
  }

  /** The providers turned on, in a stable order. */
  enabledProviders(): OAuthProviderName[] {
    return OAUTH_PROVIDERS.filter((name) => this.providers.has(name));
  }

  /** Where OAUTH_REDIRECT_URL sends a finished browser sign-in; null: the callback answers JSON. */
  get redirectUrl(): URL | null {
    return this.config.redirectUrl;
  }

  /** Whether the public URL is https: the state cookie is then Secure. */
  get secureCookies(): boolean {
    return this.config.publicUrl?.protocol === 'https:';
  }

  private provider(name: string): SignInProvider {
    const provider = this.providers.get(parseInput(oauthProviderInput, { provider: name }, 'path').provider);
    if (!provider) throw new UnknownProviderError();
    return provider;
  }

  /** The callback URL registered with the provider. */
  callbackUrl(name: OAuthProviderName): string {
    return `${this.config.publicUrl!.href.replace(/\/$/, '')}/api/auth/oauth/${name}/callback`;
  }

  /**
   * Starts a sign-in: the provider's authorization URL, and the `state` the browser must hold (in a
   * cookie) to finish it. The PKCE verifier and nonce stay in the database, keyed by the state's hash.
   * @example const { url, state } = await oauth.start('google', '203.0.113.7')
   */
  async start(name: string, clientAddress: string | null): Promise<{ url: URL; state: string }> {
    const provider = this.provider(name);
    this.starts.reserve(clientAddress ? [clientAddress] : []);
    const checks: SignInChecks = {
      state: client.randomState(),
      codeVerifier: client.randomPKCECodeVerifier(),
      nonce: provider.usesNonce ? client.randomNonce() : null,
    };
    const url = await provider.authorizationUrl(this.callbackUrl(provider.name), checks);
    const now = Date.now();
    // Sign-ins nobody finished are swept here, so the table holds at most SIGN_IN_TTL_MS of starts.
    await this.db.oAuthSignIn.deleteMany({ where: { expiresAt: { lt: new Date(now) } } });
    await this.db.oAuthSignIn.create({
      data: {
        stateHash: sha256(checks.state),
        provider: provider.name,
        codeVerifier: checks.codeVerifier,
        nonce: checks.nonce,
        expiresAt: new Date(now + SIGN_IN_TTL_MS),
      },
    });
    return { url, state: checks.state };
  }

  /**
   * Finishes a sign-in from the provider's redirect. The URL's `state` must be the one this browser
   * holds (`browserState`, from its cookie), and its pending sign-in is claimed once: a replayed or
   * foreign callback is refused. openid-client then checks the code exchange (PKCE) and the ID token (nonce).
   */
  async finish(name: string, callbackUrl: URL, browserState: string | null): Promise<SignInResult> {
    const provider = this.provider(name);
    const state = callbackUrl.searchParams.get('state');
    if (!state || !browserState || state !== browserState) {
      throw new SignInFailedError('The sign-in state does not match the one this browser started: start again');
    }
    const stateHash = sha256(state);
    const pending = await this.db.oAuthSignIn.findUnique({ where: { stateHash } });
    // Claimed by deleting it: of two callbacks with the same state, one deletes the row.
    const claimed = pending ? (await this.db.oAuthSignIn.deleteMany({ where: { stateHash } })).count === 1 : false;
    if (!pending || !claimed || pending.provider !== provider.name || pending.expiresAt.getTime() <= Date.now()) {
      throw new SignInFailedError('This sign-in expired or was already finished: start again');
    }
    // The URL as registered, not as this instance saw it (a proxy may have rewritten host or scheme).
    const registered = new URL(this.callbackUrl(provider.name));
    registered.search = callbackUrl.search;
    const profile = await provider.finish(registered, { state, codeVerifier: pending.codeVerifier, nonce: pending.nonce });
    return this.signIn(provider.name, profile);
  }

  private async signIn(provider: OAuthProviderName, profile: ProviderProfile, attempt = 0): Promise<SignInResult> {
    const known = await this.db.userIdentity.findUnique({
      where: { provider_subject: { provider, subject: profile.subject } },
      select: { id: true, user: { select: publicUserSelect } },
    });
    if (known) {
      if (profile.emailVerified) await this.db.userIdentity.update({ where: { id: known.id }, data: { email: profile.email } });
      return { kind: 'signed_in', user: known.user, token: await this.auth.issueToken(known.user.id), created: false };
    }
    // An address the provider has not verified proves nothing: it neither makes an account (it would
    // hold that address against its owner) nor reaches one.
    if (!profile.email || !profile.emailVerified) {
      throw new AppError('FORBIDDEN', `Your ${provider} account has no verified email address: verify one there, then sign in again`);
    }
    const owner = await this.db.user.findUnique({ where: { email: profile.email }, select: { id: true } });
    if (owner) return this.requestLink(owner.id, provider, profile);
    try {
      const user = await this.db.user.create({
        data: {
          ...(await this.freeUsername(profile.usernameHints, provider)),
          email: profile.email,
          hashedPassword: '',
          identities: { create: { provider, subject: profile.subject, email: profile.email } },
        },
        select: publicUserSelect,
      });
      return { kind: 'signed_in', user, token: await this.auth.issueToken(user.id), created: true };
    } catch (error) {
      // A registration or another callback raced this one (username, email or identity): decide again.
      if (isUniqueViolation(error) && attempt < USERNAME_ATTEMPTS) return this.signIn(provider, profile, attempt + 1);
      throw error;
    }
  }

  private async requestLink(userId: number, provider: OAuthProviderName, profile: ProviderProfile): Promise<SignInResult> {
    const linkToken = randomBytes(32).toString('base64url');
    const now = Date.now();
    await this.db.oAuthLinkRequest.deleteMany({ where: { expiresAt: { lt: new Date(now) } } });
    await this.db.oAuthLinkRequest.create({
      data: { tokenHash: sha256(linkToken), userId, provider, subject: profile.subject, email: profile.email!, expiresAt: new Date(now + LINK_TTL_MS) },
    });
    return { kind: 'link_required', provider, email: profile.email!, linkToken };
  }

  /** A username no one has, made from the profile: the first hint that fits the rules, else with a short suffix. */
  private async freeUsername(hints: string[], provider: string): Promise<{ username: string; usernameKey: string }> {
    const base =
      hints
        .map((hint) =>
          hint
            .trim()
            .replace(/\s+/g, '_')
            .replace(/[^A-Za-z0-9_.-]/g, '')
            .slice(0, 32),
        )
        .find((hint) => hint.length >= 3) ?? `${provider}_user`;
    const candidates = [base, ...Array.from({ length: USERNAME_ATTEMPTS }, () => `${base.slice(0, 27)}-${randomBytes(2).toString('hex')}`)];
    const taken = new Set(
      (await this.db.user.findMany({ where: { usernameKey: { in: candidates.map((name) => name.toLowerCase()) } }, select: { usernameKey: true } })).map(
        (user) => user.usernameKey,
      ),
    );
    const username = candidates.find((name) => !taken.has(name.toLowerCase()));
    if (!username) throw new AppError('CONFLICT', 'Could not find a free username: try again');
    return { username, usernameKey: username.toLowerCase() };
  }

  /**
   * Links the identity a link request holds to `user`, who proves they own the account by being
   * signed in: the token is single-use, expires after LINK_TTL_MS, and works only for the user whose
   * email matched.
   * @example await oauth.confirmLink(me, { link_token: linkToken })
   */
  async confirmLink(user: PublicUser, input: unknown): Promise<SignInMethods> {
    const { link_token: linkToken } = parseInput(oauthLinkInput, input);
    const tokenHash = sha256(linkToken);
    const request = await this.db.oAuthLinkRequest.findUnique({ where: { tokenHash } });
    const claimed =
      request && request.userId === user.id ? (await this.db.oAuthLinkRequest.deleteMany({ where: { tokenHash, userId: user.id } })).count === 1 : false;
    if (!request || !claimed || request.expiresAt.getTime() <= Date.now()) {
      throw new AppError('BAD_REQUEST', 'This link token is invalid, expired or already used: sign in with the provider again');
    }
    try {
      await this.db.userIdentity.create({ data: { userId: user.id, provider: request.provider, subject: request.subject, email: request.email } });
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new AppError(
          'CONFLICT',
          `This ${request.provider} account is already linked, or you have another ${request.provider} account linked: unlink it first`,
        );
      }
      throw error;
    }
    return this.signInMethods(user.id);
  }

  /**
   * Unlinks the user's identity at `provider`, unless it is their last way to sign in (no password,
   * no other identity). The user's row is locked first, so two unlinks at once cannot both pass.
   */
  async unlink(user: PublicUser, name: string): Promise<SignInMethods> {
    const { provider } = parseInput(oauthProviderInput, { provider: name }, 'path');
    const removed = await this.db.$transaction(async (tx) => {
      await tx.$executeRaw`UPDATE users SET hashed_password = hashed_password WHERE id = ${user.id}`;
      const identity = await tx.userIdentity.findUnique({ where: { userId_provider: { userId: user.id, provider } }, select: { id: true } });
      if (!identity) return null;
      return tx.$executeRaw`DELETE FROM user_identities WHERE id = ${identity.id} AND (
        EXISTS (SELECT 1 FROM users WHERE id = ${user.id} AND hashed_password <> '')
        OR EXISTS (SELECT 1 FROM user_identities other WHERE other.user_id = ${user.id} AND other.id <> ${identity.id}))`;
    });
    if (removed === null) throw new AppError('NOT_FOUND', `No ${provider} account is linked`);
    if (removed === 0) {
      throw new AppError('BAD_REQUEST', `Unlinking ${provider} would leave no way to sign in: link another provider first`);
    }
    return this.signInMethods(user.id);
  }

  /** How `userId` can sign in: whether they have a password, and their linked identities (oldest first). */
  async signInMethods(userId: number): Promise<SignInMethods> {
    const user = await this.db.user.findUnique({
      where: { id: userId },
      select: { hashedPassword: true, identities: { select: identitySelect, orderBy: { id: 'asc' } } },
    });
    return { hasPassword: Boolean(user?.hashedPassword), identities: user?.identities ?? [] };
  }
}
