import { describe, expect, test } from 'bun:test';
import { signUp, type TestUser } from './support/app';
import { servedTestApp } from './support/sockets';

/**
 * Things that exist once: a member in a chat (a second invite is refused and pushes nothing) and a
 * username, whatever its case (users.username_key holds it in lower case, unique).
 */

const served = servedTestApp();

const invite = (inviter: TestUser, chatId: number, username: string) =>
  served.t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: inviter.token, json: { username } });

async function createChat(owner: TestUser, name: string): Promise<number> {
  const response = await served.t.request('/api/chats', { method: 'POST', token: owner.token, json: { name, is_group: true } });
  return ((await response.json()) as { id: number }).id;
}

async function participants(user: TestUser, chatId: number): Promise<string[]> {
  const response = await served.t.request(`/api/chats/${chatId}/participants`, { token: user.token });
  return ((await response.json()) as { username: string }[]).map((participant) => participant.username);
}

async function graphql(query: string, variables: Record<string, unknown>, token?: string) {
  const response = await served.t.request('/graphql', { method: 'POST', token, json: { query, variables } });
  return (await response.json()) as { data?: unknown; errors?: { message: string; extensions: { code: string } }[] };
}

describe('inviting someone who is already a participant', () => {
  test('REST: 400 "User is already a participant", and the invitee hears of the first invite only', async () => {
    const owner = await signUp(served.t);
    const jane = await signUp(served.t);
    const chatId = await createChat(owner, 'once');
    const later = await createChat(owner, 'later');
    const janes = served.kit.chat(jane.token);
    await janes.opened;

    expect((await invite(owner, chatId, jane.username)).status).toBe(200);
    const again = await invite(owner, chatId, jane.username.toUpperCase());
    expect(again.status).toBe(400);
    expect(await again.json()).toEqual({ detail: 'User is already a participant' });
    expect(await participants(owner, chatId)).toEqual([owner.username, jane.username]);

    // A later invite to another chat is her next push: nothing came for the refused one in between.
    expect((await invite(owner, later, jane.username)).status).toBe(200);
    await janes.next((frame) => frame.type === 'chat_invite' && frame.chat_id === later, 'the invite to the later chat');
    expect(janes.frames.filter((frame) => frame.type === 'chat_invite').map((frame) => frame.chat_id)).toEqual([chatId, later]);
  });

  test('GraphQL: inviteUser answers CONFLICT with the same message', async () => {
    const owner = await signUp(served.t);
    const jane = await signUp(served.t);
    const chatId = await createChat(owner, 'graphql');
    const query = 'mutation ($chatId: ID!, $username: String!) { inviteUser(chatId: $chatId, username: $username) { id } }';
    expect((await graphql(query, { chatId, username: jane.username }, owner.token)).errors).toBeUndefined();
    const again = await graphql(query, { chatId, username: jane.username }, owner.token);
    expect(again.errors?.[0]).toMatchObject({ message: 'User is already a participant', extensions: { code: 'CONFLICT' } });
    const self = await graphql(query, { chatId, username: owner.username }, owner.token);
    expect(self.errors?.[0]?.extensions.code).toBe('CONFLICT');
  });

  test('two invites of one user at the same moment: one is taken, one refused, one push', async () => {
    const owner = await signUp(served.t);
    const member = await signUp(served.t);
    const jane = await signUp(served.t);
    const chatId = await createChat(owner, 'race');
    expect((await invite(owner, chatId, member.username)).status).toBe(200);
    const janes = served.kit.chat(jane.token);
    await janes.opened;

    const statuses = (await Promise.all([invite(owner, chatId, jane.username), invite(member, chatId, jane.username)])).map((response) => response.status);
    expect(statuses.sort()).toEqual([200, 400]);
    expect(await participants(owner, chatId)).toEqual([owner.username, member.username, jane.username]);
    await janes.next('chat_invite');
    // Her socket's next answer comes after any push already sent to it: still one invite.
    await janes.sync();
    expect(janes.frames.filter((frame) => frame.type === 'chat_invite')).toHaveLength(1);
  });
});

describe('usernames are unique whatever their case', () => {
  const register = (username: string, email = `${username.toLowerCase()}-${crypto.randomUUID().slice(0, 8)}@example.com`) =>
    served.t.request('/api/auth/register', { method: 'POST', json: { username, email, password: 'password123' } });

  test('ALICE cannot register beside alice: 400 "Username already registered" (GraphQL: CONFLICT)', async () => {
    expect((await register('alice_case')).status).toBe(200);
    const upper = await register('ALICE_CASE');
    expect(upper.status).toBe(400);
    expect(await upper.json()).toEqual({ detail: 'Username already registered' });

    const overGraphql = await graphql(
      'mutation ($u: String!) { register(username: $u, email: "other-alice@example.com", password: "password123") { token } }',
      { u: 'Alice_Case' },
    );
    expect(overGraphql.errors?.[0]).toMatchObject({ message: 'Username already registered', extensions: { code: 'CONFLICT' } });
    expect(await served.t.app.services.db.user.count({ where: { usernameKey: 'alice_case' } })).toBe(1);
  });

  test('two registrations racing, differing only in case: one is stored', async () => {
    const [first, second] = await Promise.all([register('Bob_Race'), register('bOB_rACE')]);
    expect([first.status, second.status].sort()).toEqual([200, 400]);
    const refused = first.status === 400 ? first : second;
    expect(await refused.json()).toEqual({ detail: 'Username already registered' });
    expect(await served.t.app.services.db.user.count({ where: { usernameKey: 'bob_race' } })).toBe(1);
  });
});
