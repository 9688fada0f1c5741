import { describe, expect, test } from 'bun:test';
import { MAX_AVATAR_BYTES } from '../src/services/profile.service';
import { signUp, type TestUser } from './support/app';
import { media } from './support/media';
import { servedTestApp } from './support/sockets';

/** Profiles and avatars: display name and bio, avatar upload (sniffed, capped), every user object carrying both, `user_updated` pushes. */

const served = servedTestApp();

async function pair() {
  const t = served.t;
  const alice = await signUp(t);
  const bob = await signUp(t);
  const created = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'p', participant_usernames: [bob.username] } });
  return { alice, bob, chatId: ((await created.json()) as { id: number }).id };
}

const putAvatar = (user: TestUser, body: Uint8Array, type = 'image/png') =>
  served.t.request('/api/auth/me/avatar', { method: 'PUT', token: user.token, headers: { 'content-type': type }, body: new Uint8Array(body) });

describe('profiles', () => {
  test('PATCH /api/auth/me sets the display name and bio; every user object then carries the name', async () => {
    const t = served.t;
    const { alice, bob, chatId } = await pair();
    const patched = await t.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { display_name: '  Alice A. ', bio: 'Designs things' } });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ id: alice.id, display_name: 'Alice A.', bio: 'Designs things', avatar_url: null });
    expect(await (await t.request(`/api/users/${alice.id}`, { token: bob.token })).json()).toMatchObject({ display_name: 'Alice A.', bio: 'Designs things' });
    expect(await (await t.request('/api/auth/me', { token: alice.token })).json()).toMatchObject({ display_name: 'Alice A.' });
    const participants = (await (await t.request(`/api/chats/${chatId}/participants`, { token: bob.token })).json()) as any[];
    expect(participants.find((p) => p.id === alice.id)).toMatchObject({ display_name: 'Alice A.', avatar_url: null });
    const search = (await (await t.request(`/api/users/search?query=${alice.username.slice(0, 8)}`, { token: bob.token })).json()) as any[];
    expect(search.find((u) => u.id === alice.id)).toMatchObject({ display_name: 'Alice A.' });
    // Only the bio changes; blank clears.
    const cleared = await t.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { bio: ' ' } });
    expect(await cleared.json()).toMatchObject({ display_name: 'Alice A.', bio: null });
    const tooLong = await t.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { display_name: 'x'.repeat(65) } });
    expect(tooLong.status).toBe(422);
    expect((await t.request('/api/users/999999', { token: bob.token })).status).toBe(404);
  });

  test('GraphQL User carries displayName and avatarUrl', async () => {
    const t = served.t;
    const { alice } = await pair();
    await t.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { display_name: 'Ali' } });
    const result = await (await t.request('/graphql', { method: 'POST', token: alice.token, json: { query: '{ me { displayName avatarUrl } }' } })).json();
    expect(result.data.me).toEqual({ displayName: 'Ali', avatarUrl: null });
  });
});

test("GraphQL: updateProfile sets and clears like PATCH, user(id) reads anyone's profile, errors carry extensions.code", async () => {
  const t = served.t;
  const { alice, bob } = await pair();
  const gql = async (token: string, query: string, variables: Record<string, unknown> = {}) =>
    (await (await t.request('/graphql', { method: 'POST', token, json: { query, variables } })).json()) as { data?: any; errors?: any[] };
  const set = await gql(alice.token, 'mutation { updateProfile(displayName: " Ali ", bio: "Maps") { id displayName bio } }');
  expect(set.data.updateProfile).toEqual({ id: String(alice.id), displayName: 'Ali', bio: 'Maps' });
  // Left out stays, null clears.
  const cleared = await gql(alice.token, 'mutation { updateProfile(bio: null) { displayName bio } }');
  expect(cleared.data.updateProfile).toEqual({ displayName: 'Ali', bio: null });
  const seen = await gql(bob.token, 'query ($id: ID!) { user(id: $id) { username displayName bio avatarUrl } }', { id: String(alice.id) });
  expect(seen.data.user).toEqual({ username: alice.username, displayName: 'Ali', bio: null, avatarUrl: null });
  expect((await t.request('/api/users/' + alice.id, { token: bob.token }).then((r) => r.json())) as object).toMatchObject({ display_name: 'Ali', bio: null });
  const tooLong = await gql(alice.token, 'mutation ($name: String) { updateProfile(displayName: $name) { id } }', { name: 'x'.repeat(65) });
  expect(tooLong.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  const missing = await gql(bob.token, '{ user(id: "999999") { id } }');
  expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const signedOut = await gql('', 'mutation { removeAvatar { id } }');
  expect(signedOut.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  const removed = await gql(alice.token, 'mutation { removeAvatar { avatarUrl } }');
  expect(removed.data.removeAvatar).toEqual({ avatarUrl: null });
});

describe('avatars', () => {
  test('PUT an image sets avatar_url, which serves it to anyone; a new one replaces it; DELETE clears it', async () => {
    const t = served.t;
    const { alice, bob } = await pair();
    const png = media.png(64, 64, 500);
    const set = await putAvatar(alice, png);
    expect(set.status).toBe(200);
    const { avatar_url } = (await set.json()) as { avatar_url: string };
    expect(avatar_url).toMatch(new RegExp(`^/api/users/${alice.id}/avatar\\?v=`));
    const image = await t.request(avatar_url);
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(png);
    expect(await (await t.request(`/api/users/${alice.id}`, { token: bob.token })).json()).toMatchObject({ avatar_url });

    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(media.jpeg())], { type: 'image/jpeg' }), 'me.jpg');
    const replaced = (await (await t.request('/api/auth/me/avatar', { method: 'PUT', token: alice.token, body: form })).json()) as { avatar_url: string };
    expect(replaced.avatar_url).not.toBe(avatar_url);
    expect((await t.request(replaced.avatar_url)).headers.get('content-type')).toBe('image/jpeg');

    const removed = await t.request('/api/auth/me/avatar', { method: 'DELETE', token: alice.token });
    expect(await removed.json()).toMatchObject({ avatar_url: null });
    expect((await t.request(replaced.avatar_url)).status).toBe(404);
  });

  test.each([
    ['over 2 MiB', () => media.png(1, 1, MAX_AVATAR_BYTES + 1), 'image/png', 413],
    ['a PDF', () => media.pdf(), 'application/pdf', 415],
    ['an SVG', media.svg, 'image/svg+xml', 415],
    ['a type that lies', () => media.gif(), 'image/png', 415],
    ['empty', () => new Uint8Array(), 'image/png', 422],
  ])('%s is refused and the avatar stays', async (_case, file, type, status) => {
    const { alice } = await pair();
    const before = (await (await putAvatar(alice, media.png())).json()) as { avatar_url: string };
    const response = await putAvatar(alice, file(), type);
    expect(response.status).toBe(status);
    expect(await (await served.t.request('/api/auth/me', { token: alice.token })).json()).toMatchObject({ avatar_url: before.avatar_url });
  });
});

test('a change pushes user_updated to the sockets of everyone who shares a chat, and to the user; not to others', async () => {
  const t = served.t;
  const { alice, bob } = await pair();
  const eve = await signUp(t);
  const bobSocket = served.kit.chat(bob.token);
  const eveSocket = served.kit.chat(eve.token);
  const aliceSocket = served.kit.chat(alice.token);
  await Promise.all([bobSocket.opened, eveSocket.opened, aliceSocket.opened]);
  await Promise.all([bobSocket.sync(), eveSocket.sync(), aliceSocket.sync()]);
  await t.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { display_name: 'Alice!' } });
  expect(await bobSocket.next('user_updated')).toMatchObject({ user: { id: alice.id, display_name: 'Alice!', avatar_url: null } });
  expect(await aliceSocket.next('user_updated')).toMatchObject({ user: { id: alice.id } });
  // Eve shares no chat with Alice: the first user_updated she gets is her own.
  await t.request('/api/auth/me', { method: 'PATCH', token: eve.token, json: { display_name: 'Eve' } });
  expect(await eveSocket.next('user_updated')).toMatchObject({ user: { id: eve.id } });
  await putAvatar(alice, media.png());
  expect(await bobSocket.next('user_updated')).toMatchObject({ user: { id: alice.id, avatar_url: expect.stringContaining('/avatar?v=') } });
});
