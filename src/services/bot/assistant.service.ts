import type { Config } from '../../config';
import type { Database } from '../../db/client';
import type { PublicUser } from '../auth.service';
import { isUniqueViolation } from '../auth.service';
import type { ChatService } from '../chat.service';
import { AppError, ChatNotFoundError } from '../errors';
import type { AssistantEvent, AssistantView, EventStream, PubSub } from '../pubsub';
import type { ValidationIssue } from '../validation';
import { createAssistantInput, parseAssistantRef, parseChatId, parseInput, updateAssistantInput } from '../validation';

/** A room holds at most this many assistants: each is one more name every message is matched against. */
export const MAX_ASSISTANTS_PER_ROOM = 10;

export const assistantViewSelect = {
  id: true,
  chatId: true,
  name: true,
  instructions: true,
  model: true,
  temperature: true,
  answersMentions: true,
  grounding: true,
  isDefault: true,
  createdAt: true,
  updatedAt: true,
} as const;

/** An assistant's long memory as members see it. */
export interface AssistantMemory {
  assistantId: number;
  summary: string | null;
  /** The newest message the summary covers; null while there is none. */
  upToMessageId: number | null;
  updatedAt: Date | null;
}

export class AssistantNotFoundError extends AppError {
  constructor() {
    super('NOT_FOUND', 'Assistant not found');
  }
}

const ownerOnly = () => new AppError('FORBIDDEN', "Only the chat's owner can change its assistants");
const badField = (field: string, msg: string) => {
  const issue: ValidationIssue = { type: 'value_error', loc: ['body', field], msg };
  return new AppError('BAD_USER_INPUT', `${field}: ${msg}`, [issue]);
};

/**
 * A room's assistants: the owner creates, changes and deletes them, every member reads them. Each
 * change is stored, then published once to the room (`chat:assistant`). Settings are read from the
 * database when an answer starts, so whichever instance answers uses the same ones.
 */
export class AssistantService {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly config: Pick<Config, 'gemini' | 'bot'>,
  ) {}

  /** The room's assistants, oldest first. */
  async list(user: PublicUser, chatId: unknown): Promise<AssistantView[]> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(user.id, id);
    return this.db.assistant.findMany({ where: { chatId: id }, orderBy: { id: 'asc' }, select: assistantViewSelect });
  }

  async get(user: PublicUser, chatId: unknown, assistantId: unknown): Promise<AssistantView> {
    const ref = parseAssistantRef(chatId, assistantId);
    await this.chats.requireParticipant(user.id, ref.chatId);
    return this.find(ref.chatId, ref.assistantId);
  }

  /**
   * Adds an assistant to a chat the caller owns.
   * @example await assistants.create(owner, chatId, { name: 'chef', instructions: 'Answer as a chef.', answers_mentions: true })
   */
  async create(owner: PublicUser, chatId: unknown, input: unknown): Promise<AssistantView> {
    const id = parseChatId(chatId);
    const fields = parseInput(createAssistantInput, input);
    await this.requireOwner(owner, id);
    const model = this.allowedModel(fields.model ?? this.config.gemini.model);
    if ((await this.db.assistant.count({ where: { chatId: id } })) >= MAX_ASSISTANTS_PER_ROOM) {
      throw new AppError('BAD_REQUEST', `A chat has at most ${MAX_ASSISTANTS_PER_ROOM} assistants`);
    }
    const created = await this.unique(() =>
      this.db.assistant.create({
        data: {
          chatId: id,
          name: fields.name,
          nameKey: fields.name.toLowerCase(),
          instructions: fields.instructions,
          model,
          temperature: fields.temperature ?? null,
          answersMentions: fields.answers_mentions,
          grounding: fields.grounding,
          isDefault: fields.is_default,
        },
        select: assistantViewSelect,
      }),
    );
    if (created.isDefault) await this.onlyDefault(created);
    return this.publish(created);
  }

  /** Changes the fields given of an assistant of a chat the caller owns. */
  async update(owner: PublicUser, chatId: unknown, assistantId: unknown, input: unknown): Promise<AssistantView> {
    const ref = parseAssistantRef(chatId, assistantId);
    const fields = parseInput(updateAssistantInput, input);
    await this.requireOwner(owner, ref.chatId);
    await this.find(ref.chatId, ref.assistantId);
    const updated = await this.unique(() =>
      this.db.assistant.update({
        where: { id: ref.assistantId },
        data: {
          ...(fields.name === undefined ? {} : { name: fields.name, nameKey: fields.name.toLowerCase() }),
          ...(fields.instructions === undefined ? {} : { instructions: fields.instructions }),
          ...(fields.model === undefined ? {} : { model: this.allowedModel(fields.model) }),
          ...(fields.temperature === undefined ? {} : { temperature: fields.temperature }),
          ...(fields.answers_mentions === undefined ? {} : { answersMentions: fields.answers_mentions }),
          ...(fields.grounding === undefined ? {} : { grounding: fields.grounding }),
          ...(fields.is_default === undefined ? {} : { isDefault: fields.is_default }),
          updatedAt: new Date(),
        },
        select: assistantViewSelect,
      }),
    );
    if (updated.isDefault) await this.onlyDefault(updated);
    return this.publish(updated);
  }

  /** Deletes an assistant of a chat the caller owns; its answers stay, shown as BOT_NAME. */
  async remove(owner: PublicUser, chatId: unknown, assistantId: unknown): Promise<void> {
    const ref = parseAssistantRef(chatId, assistantId);
    await this.requireOwner(owner, ref.chatId);
    const { count } = await this.db.assistant.deleteMany({ where: { id: ref.assistantId, chatId: ref.chatId } });
    if (count === 0) throw new AssistantNotFoundError();
    this.pubsub.publish('chat:assistant', ref.chatId, { chatId: ref.chatId, kind: 'deleted', assistantId: ref.assistantId });
  }

  /** The assistant's summary of the room's older messages, for any member. */
  async memory(user: PublicUser, chatId: unknown, assistantId: unknown): Promise<AssistantMemory> {
    const ref = parseAssistantRef(chatId, assistantId);
    await this.chats.requireParticipant(user.id, ref.chatId);
    const row = await this.db.assistant.findFirst({
      where: { id: ref.assistantId, chatId: ref.chatId },
      select: { id: true, memory: true, memoryUpToId: true, memoryUpdatedAt: true },
    });
    if (!row) throw new AssistantNotFoundError();
    return { assistantId: row.id, summary: row.memory, upToMessageId: row.memoryUpToId, updatedAt: row.memoryUpdatedAt };
  }

  /** Forgets the summary (the owner only): the next one starts again from the room's beginning. */
  async clearMemory(owner: PublicUser, chatId: unknown, assistantId: unknown): Promise<void> {
    const ref = parseAssistantRef(chatId, assistantId);
    await this.requireOwner(owner, ref.chatId);
    const { count } = await this.db.assistant.updateMany({
      where: { id: ref.assistantId, chatId: ref.chatId },
      data: { memory: null, memoryUpToId: null, memoryUpdatedAt: null },
    });
    if (count === 0) throw new AssistantNotFoundError();
    this.pubsub.publish('chat:assistant', ref.chatId, { chatId: ref.chatId, kind: 'memory_cleared', assistantId: ref.assistantId });
  }

  /** Assistants' names by id, for showing their answers' author. */
  async names(ids: number[]): Promise<Map<number, string>> {
    const rows = await this.db.assistant.findMany({ where: { id: { in: ids } }, select: { id: true, name: true } });
    return new Map(rows.map((row) => [row.id, row.name]));
  }

  /** The room's assistant changes, for a participant, until they are no longer in the chat. */
  async subscribe(reader: PublicUser, chatId: unknown): Promise<EventStream<AssistantEvent>> {
    const id = parseChatId(chatId);
    return this.pubsub.subscribe('chat:assistant', id, await this.chats.participantUntilLeft(reader.id, id));
  }

  private async find(chatId: number, assistantId: number): Promise<AssistantView> {
    const row = await this.db.assistant.findFirst({ where: { id: assistantId, chatId }, select: assistantViewSelect });
    if (!row) throw new AssistantNotFoundError();
    return row;
  }

  private async requireOwner(user: PublicUser, chatId: number): Promise<void> {
    const chat = await this.db.chat.findUnique({ where: { id: chatId }, select: { ownerId: true } });
    if (!chat) throw new ChatNotFoundError();
    if (chat.ownerId === user.id) return;
    await this.chats.requireParticipant(user.id, chatId);
    throw ownerOnly();
  }

  private allowedModel(model: string): string {
    if (this.config.bot.models.includes(model)) return model;
    throw badField('model', `Model must be one of ${this.config.bot.models.join(', ')}`);
  }

  private async unique<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (isUniqueViolation(error)) throw badField('name', 'This chat already has an assistant of that name');
      throw error;
    }
  }

  /** A room has one default: the one just made default takes it from the others. */
  private async onlyDefault(assistant: AssistantView): Promise<void> {
    const others = await this.db.assistant.findMany({
      where: { chatId: assistant.chatId, isDefault: true, id: { not: assistant.id } },
      select: assistantViewSelect,
    });
    if (others.length === 0) return;
    await this.db.assistant.updateMany({ where: { id: { in: others.map((other) => other.id) } }, data: { isDefault: false, updatedAt: new Date() } });
    for (const other of others) this.publish({ ...other, isDefault: false });
  }

  private publish(assistant: AssistantView): AssistantView {
    this.pubsub.publish('chat:assistant', assistant.chatId, { chatId: assistant.chatId, kind: 'updated', assistant });
    return assistant;
  }
}
