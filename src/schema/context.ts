import type { contextCacheSymbol } from '@pothos/core';
import type { PublicUser } from '../services/auth.service';
import type { Services } from '../services';

/** Request-scoped: the caller and the service layer, nothing else. */
export interface Context {
  services: Services;
  /** The client's address, for per-address login throttling; null where unknown. */
  clientAddress: string | null;
  /** The authenticated caller; rejects with UNAUTHENTICATED when the request carried no valid token. */
  viewer: () => Promise<PublicUser>;
  /** True while executing an event once for all its subscribers (src/ws/shared-subscriptions.ts): there is no viewer. */
  shared?: true;
  /** Whose Pothos request caches this context uses, when not its own: the executions of one shared operation share them. */
  [contextCacheSymbol]?: object;
}

/** A `viewer` that authenticates `token` once, on first use, so public operations never pay for it. */
export function lazyViewer(services: Services, token: string | null): Context['viewer'] {
  let viewer: Promise<PublicUser> | undefined;
  return () => (viewer ??= services.auth.authenticate(token));
}
