import { createHash, randomBytes } from 'node:crypto';
import type { Database } from '../../db/client';
import type { PublicUser } from '../auth.service';
import { AppError, ChatNotFoundError } from '../errors';
import type { MessageService } from '../message.service';
import type { MessageEvent } from '../pubsub';
import { createIncomingHookInput, parseChatId, parseHookId, parseInput } from '../validation';

export interface IncomingHookView {
  id: number;
  chatId: number;
  name: string;
  createdAt: Date;
}

/** A hook as its creation answers it: the only time its token is shown. */
export type CreatedIncomingHook = IncomingHookView & { token: string };

const TOKEN_PATTERN = /^ihk_[0-9a-f]{64}$/;
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const hookSelect = { id: true, chatId: true, name: true, createdAt: true } as const;

/** Every unusable token gets the same answer: whether a hook ever existed is not told. */
const unknownHook = () => new AppError('NOT_FOUND', 'Unknown or revoked hook');

/**
 * Incoming hooks: a chat's owner creates one with a name and gets a token; whoever holds the token
 * posts into the chat as that name (`POST /api/hooks/{token}`), `/bot` asks included, until the
 * owner revokes it. Only a hash of the token is stored.
 */
export class IncomingHookService {
  constructor(
    private readonly db: Database,
    private readonly messages: MessageService,
  ) {}

  /**
   * @example await hooks.create(owner, chatId, { name: 'CI' }) // { id, name: 'CI', token: 'ihk_…', … }
   */
  async create(owner: PublicUser, chatId: unknown, input: unknown): Promise<CreatedIncomingHook> {
    const id = parseChatId(chatId);
    const { name } = parseInput(createIncomingHookInput, input);
    await this.requireOwner(owner, id);
    const token = `ihk_${randomBytes(32).toString('hex')}`;
    const hook = await this.db.incomingHook.create({ data: { chatId: id, name, tokenHash: hashToken(token), createdById: owner.id }, select: hookSelect });
    return { ...hook, token };
  }

  /** The chat's incoming hooks, oldest first, without their tokens. */
  async list(owner: PublicUser, chatId: unknown): Promise<IncomingHookView[]> {
    const id = parseChatId(chatId);
    await this.requireOwner(owner, id);
    return this.db.incomingHook.findMany({ where: { chatId: id }, orderBy: { id: 'asc' }, select: hookSelect });
  }

  /** Revokes the hook: its token posts nothing more. */
  async revoke(owner: PublicUser, chatId: unknown, hookId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    const hook = parseHookId(hookId);
    await this.requireOwner(owner, id);
    const { count } = await this.db.incomingHook.deleteMany({ where: { id: hook, chatId: id } });
    if (count === 0) throw new AppError('NOT_FOUND', 'Hook not found');
  }

  /** Posts `input.content` into the token's chat under the hook's name. */
  async post(token: string, input: unknown): Promise<MessageEvent> {
    if (!TOKEN_PATTERN.test(token)) throw unknownHook();
    const hook = await this.db.incomingHook.findUnique({ where: { tokenHash: hashToken(token) }, select: { id: true, chatId: true, name: true } });
    if (!hook) throw unknownHook();
    return this.messages.postAsHook(hook, input);
  }

  /** 404 when the chat does not exist, 403 for anyone but its owner. */
  private async requireOwner(user: PublicUser, chatId: number): Promise<void> {
    const chat = await this.db.chat.findUnique({ where: { id: chatId }, select: { ownerId: true } });
    if (!chat) throw new ChatNotFoundError();
    if (chat.ownerId !== user.id) throw new AppError('FORBIDDEN', "Only the chat's owner can manage its hooks");
  }
}
