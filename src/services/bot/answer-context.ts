import type { Content } from '@google/genai';
import type { Config } from '../../config';
import type { Database } from '../../db/client';
import type { ContextAttachment, ContextMessage } from '../bot-context';
import { assistantInstruction, buildContents, chooseMedia, contextWindow, memoryTurn, systemInstruction } from '../bot-context';
import { VISIBLE_STATUSES } from '../room-feed';

/** The pending ask an answer is for, as the queue found it. */
export interface Ask {
  id: number;
  /** Who asked: a member, or an incoming hook (no user id) by its name. */
  asker: { id: number | null; name: string };
  assistantId: number | null;
  threadId: number | null;
}

/** Who answers and how: a room's assistant, or the built-in bot (assistant null). */
export interface AnswerSettings {
  assistant: { id: number; name: string; memory: string | null } | null;
  model: string;
  temperature: number | null;
  grounding: boolean;
  instruction: string;
  contents: Content[];
}

const messageColumns = {
  id: true,
  content: true,
  isBot: true,
  replyToId: true,
  senderName: true,
  user: { select: { username: true } },
  attachments: { select: { id: true, filename: true, contentType: true, size: true }, orderBy: { id: 'asc' } },
} as const;

/** The bytes of the files in a context (base64, by attachment id). */
export interface MediaSource {
  dataOf(attachmentIds: number[]): Promise<Map<number, string>>;
}

/**
 * Everything an answer sends the model, read from the database when it starts (so every instance
 * answers with the same settings): the assistant's model, temperature, grounding and instructions,
 * and the context: its memory's summary, then the ask's thread, then the room's newest messages.
 */
export async function answerSettings(
  db: Database,
  config: Pick<Config, 'gemini' | 'bot'>,
  media: MediaSource,
  chatId: number,
  ask: Ask,
): Promise<AnswerSettings> {
  const [chat, assistant] = await Promise.all([
    db.chat.findUnique({ where: { id: chatId }, select: { name: true } }),
    ask.assistantId === null
      ? null
      : db.assistant.findFirst({
          where: { id: ask.assistantId, chatId },
          select: { id: true, name: true, instructions: true, model: true, temperature: true, grounding: true, memory: true },
        }),
  ]);
  const budget = { messages: config.bot.contextMessages, chars: config.bot.contextChars };
  const thread = ask.threadId === null ? [] : await threadOf(db, chatId, ask.threadId, ask.id, budget.messages);
  const inThread = new Set(thread.map((message) => message.id));
  const recent = (await history(db, chatId, ask.id, budget.messages)).filter((message) => !inThread.has(message.id) || message.id === ask.id);
  const lead = [...(assistant?.memory ? [memoryTurn(assistant.memory)] : []), ...thread.filter((message) => message.id !== ask.id)];
  const chatName = chat?.name ?? null;
  // The newest images, audio and PDFs that fit BOT_CONTEXT_BYTES go as data; older ones as a note.
  const chosen = chooseMedia(contextWindow(recent, budget, lead), config.bot.contextBytes);
  const data = await media.dataOf(chosen.map((attachment) => attachment.id));
  return {
    assistant: assistant && { id: assistant.id, name: assistant.name, memory: assistant.memory },
    model: assistant?.model ?? config.gemini.model,
    temperature: assistant?.temperature ?? null,
    grounding: assistant?.grounding ?? false,
    instruction: assistant ? assistantInstruction(chatName, ask.asker.name, assistant) : systemInstruction(chatName, ask.asker.name),
    contents: buildContents(recent, budget, lead, data),
  };
}

const toContext = (row: {
  id: number;
  content: string;
  isBot: boolean;
  senderName: string | null;
  user: { username: string } | null;
  attachments: ContextAttachment[];
}): ContextMessage => ({
  id: row.id,
  content: row.content,
  isBot: row.isBot,
  // An incoming hook's message speaks under the hook's name.
  username: row.user?.username ?? row.senderName,
  attachments: row.attachments,
});

/**
 * The room up to the asking message, oldest first, as its history shows it: deleted messages are
 * left out, edited ones read as they are now. Each earlier answer sits right after the ask it
 * replied to, wherever its id fell, so queued answers keep the conversation's order.
 */
async function history(db: Database, chatId: number, askMessageId: number, messages: number): Promise<ContextMessage[]> {
  const rows = await db.message.findMany({
    where: {
      chatId,
      status: { in: VISIBLE_STATUSES },
      OR: [
        { isBot: false, id: { lte: askMessageId } },
        { isBot: true, replyToId: { lt: askMessageId } },
      ],
    },
    orderBy: { id: 'desc' },
    take: messages * 2,
    select: messageColumns,
  });
  const position = (row: (typeof rows)[number]) => (row.isBot && row.replyToId !== null ? row.replyToId + 0.5 : row.id);
  return rows.sort((a, b) => position(a) - position(b)).map(toContext);
}

/** The thread an ask was made under: its first message and the newest of its replies before the ask, oldest first. */
async function threadOf(db: Database, chatId: number, rootId: number, askMessageId: number, messages: number): Promise<ContextMessage[]> {
  const [root, replies] = await Promise.all([
    db.message.findFirst({ where: { id: rootId, chatId, status: { in: VISIBLE_STATUSES } }, select: messageColumns }),
    db.message.findMany({
      where: { chatId, threadId: rootId, status: { in: VISIBLE_STATUSES }, id: { not: askMessageId }, OR: [{ isBot: true }, { id: { lt: askMessageId } }] },
      orderBy: { id: 'desc' },
      take: Math.max(1, Math.floor(messages / 2)),
      select: messageColumns,
    }),
  ]);
  const position = (row: (typeof replies)[number]) => (row.isBot && row.replyToId !== null ? row.replyToId + 0.5 : row.id);
  const ordered = replies.filter((row) => !row.isBot || (row.replyToId ?? 0) < askMessageId).sort((a, b) => position(a) - position(b));
  return [...(root ? [root] : []), ...ordered].map(toContext);
}
