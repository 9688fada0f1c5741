import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The headers a delivery carries; a receiver verifies the signature before trusting the body. */
export const SIGNATURE_HEADER = 'X-Webhook-Signature';
export const TIMESTAMP_HEADER = 'X-Webhook-Timestamp';
export const DELIVERY_ID_HEADER = 'X-Webhook-Id';
export const EVENT_HEADER = 'X-Webhook-Event';

/** How far a delivery's timestamp may be from the receiver's clock before it is refused as a replay. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** A new webhook's secret: 32 random bytes, hex, with a prefix that says what it is. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('hex')}`;

/**
 * `v1=` and the hex HMAC-SHA256, keyed with the webhook's secret, of `<timestamp>.<body>` (the
 * timestamp in Unix seconds, the body's exact bytes): signing the time with the body stops a replay
 * of an old delivery under a fresh timestamp.
 * @example signDelivery('whsec_…', 1767225600, '{"id":1,…}') // 'v1=5f0c…'
 */
export function signDelivery(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does with a delivery (README shows the same in a few lines): the signature must
 * match, and the timestamp be within SIGNATURE_TOLERANCE_SECONDS of now; a receiver also remembers
 * the delivery ids it has processed in that window and ignores one seen again (a replay, or a retry
 * of a delivery it already handled).
 */
export function verifyDelivery(secret: string, headers: Headers, body: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const timestamp = Number(headers.get(TIMESTAMP_HEADER));
  const signature = headers.get(SIGNATURE_HEADER) ?? '';
  if (!Number.isInteger(timestamp) || Math.abs(nowSeconds - timestamp) > SIGNATURE_TOLERANCE_SECONDS) return false;
  const expected = Buffer.from(signDelivery(secret, timestamp, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
