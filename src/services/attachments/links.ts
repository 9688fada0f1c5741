import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed, expiring download links: what a `<img>` or `<audio>` tag can load without a header. A link
 * names the attachment and when it stops working, signed with the server's secret; anyone holding it
 * may download until then, as with any signed URL. Links are made for the hour (valid one to two
 * hours), so the same attachment's link stays the same for an hour and browsers can cache it.
 */
export const LINK_HOURS = 1;

const HOUR = 3600;

export function signature(secret: string, attachmentId: number, expires: number): string {
  return createHmac('sha256', secret).update(`attachment:${attachmentId}:${expires}`).digest('base64url');
}

export class AttachmentLinks {
  constructor(
    private readonly secret: string,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The download URL of an attachment, path and query. */
  url(attachmentId: number): string {
    const expires = (Math.floor(this.now() / 1000 / HOUR) + 1 + LINK_HOURS) * HOUR;
    return `/api/attachments/${attachmentId}/content?expires=${expires}&signature=${signature(this.secret, attachmentId, expires)}`;
  }

  /** Whether `expires` and `sig` are a link this server made for the attachment and it has not expired. */
  verify(attachmentId: number, expires: string | null, sig: string | null): boolean {
    if (!expires || !sig || !/^\d{1,12}$/.test(expires)) return false;
    if (Number(expires) * 1000 <= this.now()) return false;
    const expected = Buffer.from(signature(this.secret, attachmentId, Number(expires)));
    const given = Buffer.from(sig);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
