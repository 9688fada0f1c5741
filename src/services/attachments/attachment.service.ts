import { z } from 'zod';
import type { Database } from '../../db/client';
import type { PublicUser } from '../auth.service';
import type { ChatService } from '../chat.service';
import { AppError } from '../errors';
import { groupedBy } from '../batched';
import { parseChatId, parseInput, idSchema } from '../validation';
import { audioDurationMs } from './duration';
import type { ByteRange, FileStore } from './file-store';
import { storedFileWindow } from './file-store';
import type { AttachmentLinks } from './links';
import { readFilePart } from './multipart';
import type { AttachmentKind, MediaFacts, Sniffed } from './sniff';
import { claimContradicts, mediaFacts, PLAIN_TEXT, sniff, SNIFF_BYTES, TextValidator } from './sniff';
import type { AdmittedUpload, UploadAdmission } from './upload-admission';

/** An attachment as every transport shows it (the download URL is added at the edge: it is signed for the hour). */
export interface AttachmentView extends MediaFacts {
  id: number;
  filename: string;
  contentType: string;
  size: number;
  kind: AttachmentKind;
}

/** The columns of an attachment that make its view. */
export const attachmentSelect = {
  id: true,
  filename: true,
  contentType: true,
  size: true,
  kind: true,
  width: true,
  height: true,
  durationMs: true,
} as const;

export const toAttachmentView = (row: Omit<AttachmentView, 'kind'> & { kind: string }): AttachmentView => ({ ...row, kind: row.kind as AttachmentKind });

/** Files never sent with a message are swept after this long. */
export const UNATTACHED_TTL_MS = 24 * 3600 * 1000;
const MAX_FILENAME_LENGTH = 255;

/** What a download serves: the file's facts and its bytes (all, or the requested range). */
export interface Download {
  attachment: AttachmentView;
  range: ByteRange | null;
  body: ReadableStream<Uint8Array>;
}

/** An upload as the services read it: what the admission reads (its body, the signal that says the client left), and its Content-Type. */
export interface UploadRequest extends AdmittedUpload {
  contentType: string | null;
}

export interface UploadedFile {
  /** The file's own name and bytes, sniffed and counted here. */
  filename: string | null;
  claimedType: string | null;
  body: AsyncIterable<Uint8Array>;
}

/** The checks every upload passes while it streams to the store: size cap, type from the bytes, text validity. */
export async function storeChecked(
  store: FileStore,
  key: string,
  file: UploadedFile,
  maxBytes: number,
  allowed: (sniffed: Sniffed) => boolean = () => true,
): Promise<{ sniffed: Sniffed; facts: MediaFacts; size: number }> {
  const tooLarge = () => new AppError('PAYLOAD_TOO_LARGE', `File too large: at most ${maxBytes} bytes`);
  const iterator = file.body[Symbol.asyncIterator]();
  // The head decides the type: read up to SNIFF_BYTES (or the whole file, if smaller) before storing anything.
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < SNIFF_BYTES) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    headBytes += next.value.length;
    if (headBytes > maxBytes) throw tooLarge();
  }
  // Usually the first chunk alone: used as it is, not copied.
  const headBytesJoined = head.length === 1 ? head[0]! : Buffer.concat(head);
  if (headBytesJoined.length === 0)
    throw new AppError('BAD_USER_INPUT', 'The file is empty', [{ type: 'value_error', loc: ['body', 'file'], msg: 'The file is empty' }]);
  const sniffed = sniff(headBytesJoined, { complete: ended });
  if (!sniffed || !allowed(sniffed)) throw unsupported();
  if (claimContradicts(file.claimedType, sniffed)) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `The file's content is ${sniffed.contentType}, not ${file.claimedType} as it claims`);
  }
  const facts = mediaFacts(headBytesJoined, sniffed.contentType);
  const text = sniffed.contentType === PLAIN_TEXT ? new TextValidator() : null;
  let size = headBytesJoined.length;
  // Only the generator holds the head from here: once written, it is garbage, not kept for the whole upload.
  async function* checked(first: Uint8Array): AsyncGenerator<Uint8Array> {
    yield first;
    if (!ended) {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        size += next.value.length;
        if (size > maxBytes) throw tooLarge();
        if (text && !text.push(next.value)) throw unsupported();
        yield next.value;
      }
    }
    if (text && !ended && !text.end()) throw unsupported();
  }
  await store.write(key, checked(headBytesJoined));
  return { sniffed, facts, size };
}

const unsupported = () =>
  new AppError('UNSUPPORTED_MEDIA_TYPE', 'Unsupported file type: images (PNG, JPEG, GIF, WebP), audio (WebM, Ogg, MP3, WAV, M4A), PDF and plain text only');

/** A filename as sent, checked: a bare name, no path, no control characters. */
function checkedFilename(name: string | null): string {
  const refuse = (msg: string) => new AppError('BAD_USER_INPUT', msg, [{ type: 'value_error', loc: ['body', 'file', 'filename'], msg }]);
  if (name === null || name.trim() === '') throw refuse('The file needs a filename');
  // eslint-disable-next-line no-control-regex
  if (/[/\\]/.test(name) || name === '.' || name === '..' || /[\x00-\x1f\x7f]/.test(name)) throw refuse('The filename must be a bare name, without a path');
  if (name.length > MAX_FILENAME_LENGTH || !name.isWellFormed()) throw refuse(`The filename must be at most ${MAX_FILENAME_LENGTH} characters of valid text`);
  return name;
}

/**
 * Uploads, downloads and the life of attached files. An upload belongs to its chat and uploader
 * until it is sent with a message (once, see `claim`); its file goes with the message, with the
 * chat, or, never sent, with the daily sweep.
 */
export class AttachmentService {
  constructor(
    private readonly db: Database,
    private readonly chats: Pick<ChatService, 'requireParticipant'>,
    readonly store: FileStore,
    readonly links: AttachmentLinks,
    /** MAX_UPLOAD_BYTES */
    readonly maxBytes: number,
    /** Shared with avatars: every upload body of the process is read in a turn. */
    readonly admission: UploadAdmission,
  ) {}

  /** The download URL of an attachment, signed for the hour. */
  url(attachmentId: number): string {
    return this.links.url(attachmentId);
  }

  /**
   * Stores one file sent as `multipart/form-data` (a part named `file`) in the chat, for a participant.
   * Its type is decided from its bytes; it streams to the store and is never held whole. The body is
   * read in its turn (`admission`): a 503 when too many wait already, or the wait is too long; a 408
   * when it arrives too slowly (UPLOAD_MIN_BYTES_PER_SECOND), with nothing stored.
   * @example await attachments.upload(me, 7, { body: request.body, contentType: request.headers.get('content-type'), signal: request.signal })
   */
  async upload(uploader: PublicUser, chatId: unknown, request: UploadRequest): Promise<AttachmentView> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(uploader.id, id);
    const key = crypto.randomUUID();
    const { filename, sniffed, facts, size } = await this.admission.admit(request, async (body) => {
      const part = await readFilePart(body, request.contentType);
      const filename = checkedFilename(part.filename);
      return { filename, ...(await storeChecked(this.store, key, { filename, claimedType: part.contentType, body: part.body }, this.maxBytes)) };
    });
    try {
      // Most audio states its duration at its end, or in a box anywhere: a few bounded reads of the stored file.
      const durationMs =
        facts.durationMs ?? (sniffed.kind === 'audio' ? await audioDurationMs(sniffed.contentType, storedFileWindow(this.store, key, size)) : null);
      const row = await this.db.attachment.create({
        data: {
          chatId: id,
          uploaderId: uploader.id,
          filename,
          contentType: sniffed.contentType,
          size,
          kind: sniffed.kind,
          ...facts,
          durationMs,
          storageKey: key,
        },
        select: attachmentSelect,
      });
      return toAttachmentView(row);
    } catch (error) {
      // The chat was deleted while the file streamed in.
      await this.store.delete([key]);
      throw error;
    }
  }

  /**
   * Checks that `ids` may go with a message `author` sends in `chatId`: each uploaded by them, to
   * this chat, and not sent yet. The views, in the order given.
   */
  async usable(author: PublicUser, chatId: number, ids: number[]): Promise<AttachmentView[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.attachment.findMany({
      where: { id: { in: ids }, chatId, uploaderId: author.id, messageId: null },
      select: attachmentSelect,
    });
    const byId = new Map(rows.map((row) => [row.id, toAttachmentView(row)]));
    const missing = ids.findIndex((id) => !byId.has(id));
    if (missing >= 0) throw unusable(ids[missing]!, missing);
    return ids.map((id) => byId.get(id)!);
  }

  /** Binds the attachments to the stored message; false when one was taken meanwhile (sent by a racing request). */
  async claim(author: PublicUser, chatId: number, messageId: number, ids: number[]): Promise<boolean> {
    if (ids.length === 0) return true;
    const { count } = await this.db.attachment.updateMany({
      where: { id: { in: ids }, chatId, uploaderId: author.id, messageId: null },
      data: { messageId },
    });
    return count === ids.length;
  }

  /** Opens an attachment's bytes for a participant of its chat (`viewer`), or for whoever holds a valid signed link. */
  async open(
    access: { viewer: PublicUser } | { expires: string | null; signature: string | null },
    attachmentId: unknown,
    rangeHeader: string | null,
  ): Promise<Download> {
    const id = parseInput(attachmentIdInput, { attachment_id: attachmentId }, 'path').attachment_id;
    if (!('viewer' in access) && !this.links.verify(id, access.expires, access.signature)) {
      throw new AppError('FORBIDDEN', 'This link is invalid or has expired');
    }
    const row = await this.db.attachment.findUnique({ where: { id }, select: { ...attachmentSelect, chatId: true, storageKey: true, messageId: true } });
    if (!row) throw new AppError('NOT_FOUND', 'Attachment not found');
    if ('viewer' in access) await this.chats.requireParticipant(access.viewer.id, row.chatId);
    const range = parseRange(rangeHeader, row.size);
    return { attachment: toAttachmentView(row), range, body: this.store.read(row.storageKey, range) };
  }

  /** The attachments of each of the messages, in the order they were sent. */
  async viewsOf(messageIds: number[]): Promise<Map<number, AttachmentView[]>> {
    if (messageIds.length === 0) return new Map();
    const rows = await this.db.attachment.findMany({
      where: { messageId: { in: messageIds } },
      orderBy: { id: 'asc' },
      select: { ...attachmentSelect, messageId: true },
    });
    return groupedBy(
      rows,
      (row) => row.messageId!,
      ({ messageId: _message, ...row }) => toAttachmentView(row),
    );
  }

  /** The files' bytes in base64, by attachment id, for the bot's context (bounded by BOT_CONTEXT_BYTES); files gone meanwhile are left out. */
  async dataOf(ids: number[]): Promise<Map<number, string>> {
    const data = new Map<number, string>();
    if (ids.length === 0) return data;
    const rows = await this.db.attachment.findMany({ where: { id: { in: ids } }, select: { id: true, storageKey: true } });
    for (const row of rows) {
      const bytes = await new Response(this.store.read(row.storageKey, null)).arrayBuffer().catch(() => null);
      if (bytes) data.set(row.id, Buffer.from(bytes).toString('base64'));
    }
    return data;
  }

  /** Deletes the files of a message being deleted (their rows go with it). */
  async deleteForMessage(messageId: number): Promise<void> {
    const rows = await this.db.attachment.findMany({ where: { messageId }, select: { id: true, storageKey: true } });
    if (rows.length === 0) return;
    await this.db.attachment.deleteMany({ where: { id: { in: rows.map((row) => row.id) } } });
    await this.store.delete(rows.map((row) => row.storageKey));
  }

  /** The files of a chat about to be deleted; call `release` once it is (the rows go by cascade). */
  async filesOfChat(chatId: number): Promise<{ release: () => Promise<void> }> {
    const rows = await this.db.attachment.findMany({ where: { chatId }, select: { storageKey: true } });
    return { release: () => this.store.delete(rows.map((row) => row.storageKey)) };
  }

  /** Deletes uploads never sent with a message within UNATTACHED_TTL_MS of their upload; returns how many. */
  async sweep(now = new Date()): Promise<number> {
    const rows = await this.db.attachment.findMany({
      where: { messageId: null, createdAt: { lt: new Date(now.getTime() - UNATTACHED_TTL_MS) } },
      select: { id: true, storageKey: true },
      take: 1000,
    });
    if (rows.length === 0) return 0;
    const { count } = await this.db.attachment.deleteMany({ where: { id: { in: rows.map((row) => row.id) }, messageId: null } });
    await this.store.delete(rows.map((row) => row.storageKey));
    return count;
  }
}

export const attachmentIdInput = z.object({ attachment_id: idSchema });

function unusable(id: number, index: number): AppError {
  const msg = `Attachment ${id} cannot be sent here: it is not one you uploaded to this chat, or it was sent already`;
  return new AppError('BAD_USER_INPUT', msg, [{ type: 'value_error', loc: ['body', 'attachment_ids', index], msg }]);
}

/**
 * One `bytes=` range of a file of `size` bytes (a suffix `-n` too); null for no header or one this
 * does not serve (several ranges: the whole file is answered). Throws RANGE_NOT_SATISFIABLE past the end.
 */
export function parseRange(header: string | null, size: number): ByteRange | null {
  const match = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!match || (match[1] === '' && match[2] === '')) return null;
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) throw new AppError('RANGE_NOT_SATISFIABLE', 'Range not satisfiable', size);
  return { start, end };
}
