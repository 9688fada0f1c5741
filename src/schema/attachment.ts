import type { AttachmentView } from '../services/attachments/attachment.service';
import { builder } from './builder';

const AttachmentKindRef = builder.enumType('AttachmentKind', {
  values: { IMAGE: { value: 'image' }, AUDIO: { value: 'audio' }, PDF: { value: 'pdf' }, FILE: { value: 'file' } } as const,
});

export const AttachmentRef = builder.objectRef<AttachmentView>('Attachment').implement({
  description:
    'A file sent with a message. Upload it with `POST /api/chats/{chat_id}/attachments` (multipart), then pass its id in `sendMessage(attachmentIds)`.',
  fields: (t) => ({
    id: t.exposeID('id'),
    filename: t.exposeString('filename'),
    contentType: t.exposeString('contentType', { description: 'Decided from the bytes, never from the client.' }),
    size: t.exposeInt('size', { description: 'Bytes.' }),
    kind: t.expose('kind', { type: AttachmentKindRef }),
    url: t.string({
      description: 'A signed download link (path and query), valid one to two hours: works in an <img> or <audio> tag with no header.',
      resolve: (attachment, _args, context) => context.services.attachments.url(attachment.id),
    }),
    width: t.exposeInt('width', { nullable: true, description: 'Images only.' }),
    height: t.exposeInt('height', { nullable: true, description: 'Images only.' }),
    durationMs: t.exposeInt('durationMs', {
      nullable: true,
      description: 'Audio: as its container states it (WAV, Ogg, MP3, M4A, WebM); null where it does not (a WebM from a browser recorder).',
    }),
  }),
});
