import type { TestApp, TestUser } from './app';

/** A group chat named `name`, owned by `owner`, with `members` invited; returns its id. */
export async function groupRoom(t: TestApp, owner: TestUser, members: TestUser[], name: string): Promise<number> {
  const chat = (await (await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name, is_group: true } })).json()) as { id: number };
  for (const member of members) await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: { username: member.username } });
  return chat.id;
}

/** Stores `count` messages from `author` at once (one group commit) through the service; returns their ids in order. */
export async function storeMessages(t: TestApp, author: TestUser, chatId: number, count: number, content = (i: number) => `message ${i}`): Promise<number[]> {
  const user = await t.app.services.auth.authenticate(author.token);
  const stored = await Promise.all(Array.from({ length: count }, (_, i) => t.app.services.messages.send(user, chatId, { content: content(i) })));
  return stored.map((message) => message.id).sort((a, b) => a - b);
}
