import { z } from 'zod';
import type { Database } from '../db/client';
import type { AuthService, PublicUser } from './auth.service';
import { publicUserSelect } from './auth.service';
import type { FileStore } from './attachments/file-store';
import { readFilePart, multipartBoundary } from './attachments/multipart';
import type { UploadRequest } from './attachments/attachment.service';
import { storeChecked } from './attachments/attachment.service';
import type { UploadAdmission } from './attachments/upload-admission';
import { AppError, UserNotFoundError } from './errors';
import type { PubSub } from './pubsub';
import { parseInput, parseUserId, storableText } from './validation';

/** An avatar is an image of at most this many bytes (sniffed like any upload). */
export const MAX_AVATAR_BYTES = 2 * 1024 * 1024;

export const profileInput = z.object({
  display_name: storableText(z.string().trim().max(64, 'String should have at most 64 characters'))
    .nullish()
    .transform((name) => (name === undefined ? undefined : name || null)),
  bio: storableText(z.string().trim().max(500, 'String should have at most 500 characters'))
    .nullish()
    .transform((bio) => (bio === undefined ? undefined : bio || null)),
});

export type Profile = PublicUser & { bio: string | null };

/**
 * Profiles: a display name, a bio and an avatar. Every change is pushed as `user_updated` to the
 * user and to everyone who shares a chat with them.
 */
export class ProfileService {
  constructor(
    private readonly db: Database,
    private readonly auth: Pick<AuthService, 'forget'>,
    private readonly pubsub: PubSub,
    private readonly store: FileStore,
    /** The attachments' admission: avatars take turns with every other upload. */
    private readonly admission: UploadAdmission,
    private readonly sharersOf: (userId: number) => Promise<number[]>,
  ) {}

  /** Anyone's profile, for a signed-in caller. */
  async get(userId: unknown): Promise<Profile> {
    const id = parseUserId(userId);
    const user = await this.db.user.findUnique({ where: { id }, select: { ...publicUserSelect, bio: true } });
    if (!user) throw new UserNotFoundError();
    return user;
  }

  /**
   * Sets the caller's display name and bio; a field left out stays, null or blank clears it.
   * @example await profiles.update(me, { display_name: 'Ana M.', bio: 'Design, coffee' })
   */
  async update(user: PublicUser, input: unknown): Promise<Profile> {
    const { display_name: displayName, bio } = parseInput(profileInput, input);
    const updated = await this.db.user.update({ where: { id: user.id }, data: { displayName, bio }, select: { ...publicUserSelect, bio: true } });
    await this.announce(updated);
    return updated;
  }

  /** Replaces the caller's avatar with an image (raw bytes, or a multipart part named `file`), at most MAX_AVATAR_BYTES. */
  async setAvatar(user: PublicUser, upload: UploadRequest): Promise<Profile> {
    const key = `avatar-${crypto.randomUUID()}`;
    const { contentType } = upload;
    const { sniffed } = await this.admission.admit(upload, async (body) => {
      const multipart = multipartBoundary(contentType) !== null;
      const file = multipart ? await readFilePart(body, contentType) : { filename: null, contentType, body: body ?? emptyStream() };
      return storeChecked(
        this.store,
        key,
        { filename: file.filename, claimedType: file.contentType, body: file.body },
        MAX_AVATAR_BYTES,
        (type) => type.kind === 'image',
      );
    });
    return this.replaceAvatar(user, { avatarKey: key, avatarType: sniffed.contentType });
  }

  async deleteAvatar(user: PublicUser): Promise<Profile> {
    return this.replaceAvatar(user, { avatarKey: null, avatarType: null });
  }

  /** A user's avatar image, for anyone: it is as public as their username. */
  async avatar(userId: unknown): Promise<{ contentType: string; body: ReadableStream<Uint8Array> }> {
    const id = parseUserId(userId);
    const user = await this.db.user.findUnique({ where: { id }, select: { avatarKey: true, avatarType: true } });
    if (!user?.avatarKey || !user.avatarType) throw new AppError('NOT_FOUND', 'No avatar');
    return { contentType: user.avatarType, body: this.store.read(user.avatarKey, null) };
  }

  private async replaceAvatar(user: PublicUser, avatar: { avatarKey: string | null; avatarType: string | null }): Promise<Profile> {
    const before = await this.db.user.findUnique({ where: { id: user.id }, select: { avatarKey: true } });
    const updated = await this.db.user.update({ where: { id: user.id }, data: avatar, select: { ...publicUserSelect, bio: true } });
    if (before?.avatarKey && before.avatarKey !== avatar.avatarKey) await this.store.delete([before.avatarKey]);
    await this.announce(updated);
    return updated;
  }

  private async announce(profile: Profile): Promise<void> {
    this.auth.forget(profile.id);
    const { bio: _bio, ...user } = profile;
    for (const userId of [profile.id, ...(await this.sharersOf(profile.id))]) this.pubsub.publish('user:event', userId, { type: 'user_updated', user });
  }
}

const emptyStream = () => new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
