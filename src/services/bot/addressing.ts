import type { Database } from '../../db/client';

/** Who a message asks, read from its text alone: the room's assistants decide whether it is an ask. */
export interface Address {
  /** The assistant named (`/bot @name …` or `@name …`), lower case; null for the room's default. */
  name: string | null;
  /** The question without the prefix: '' for a bare `/bot`. */
  prompt: string;
  /** Asked with `/bot` (always an ask); else a mention, an ask only of an assistant that answers mentions. */
  viaBot: boolean;
}

const BOT_PREFIX = /^\/bot(?:\s|$)/;
const MENTION = /^@([A-Za-z0-9_.-]{1,32})(?:\s|$)/;

/** The question of a `/bot …` message, '' for a bare `/bot`, or null when it is no bot command. */
export function botPrompt(content: string): string | null {
  return BOT_PREFIX.test(content) ? content.slice(4).trim() : null;
}

/**
 * Reads `/bot …`, `/bot @name …` and `@name …`; null for any other message.
 * @example parseAddress('/bot @chef what now?') // { name: 'chef', prompt: 'what now?', viaBot: true }
 */
export function parseAddress(content: string): Address | null {
  const prompt = botPrompt(content);
  if (prompt !== null) {
    const mention = MENTION.exec(prompt);
    return mention ? { name: mention[1]!.toLowerCase(), prompt: prompt.slice(mention[0].length).trim(), viaBot: true } : { name: null, prompt, viaBot: true };
  }
  const mention = MENTION.exec(content);
  return mention ? { name: mention[1]!.toLowerCase(), prompt: content.slice(mention[0].length).trim(), viaBot: false } : null;
}

/**
 * The assistant an address asks, or undefined when it asks none: `/bot …` asks the room's default
 * (the one marked so, else its oldest; null, the built-in bot, in a room without assistants),
 * `/bot @name …` the one named (the default when no assistant has that name), `@name …` an
 * assistant of that name that answers mentions (else it is an ordinary message).
 */
export async function addressedAssistant(db: Database, chatId: number, address: Address): Promise<number | null | undefined> {
  if (!address.viaBot) {
    const named = await db.assistant.findFirst({ where: { chatId, nameKey: address.name!, answersMentions: true }, select: { id: true } });
    return named?.id;
  }
  const assistants = await db.assistant.findMany({ where: { chatId }, orderBy: { id: 'asc' }, select: { id: true, nameKey: true, isDefault: true } });
  const named = address.name === null ? undefined : assistants.find((assistant) => assistant.nameKey === address.name);
  return (named ?? assistants.find((assistant) => assistant.isDefault) ?? assistants[0])?.id ?? null;
}
