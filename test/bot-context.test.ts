import { describe, expect, test } from 'bun:test';
import type { ContextMessage } from '../src/services/bot-context';
import { buildContents, systemInstruction } from '../src/services/bot-context';
import { botPrompt } from '../src/services/bot/addressing';

/** The model's view of a room: `buildContents` and `systemInstruction`, as pure functions. */

let nextId = 0;
const human = (username: string | null, content: string): ContextMessage => ({ id: ++nextId, username, content, isBot: false });
const bot = (content: string): ContextMessage => ({ id: ++nextId, username: null, content, isBot: true });
const wide = { messages: 100, chars: 100_000 };
const user = (text: string) => ({ role: 'user', parts: [{ text }] });
const model = (text: string) => ({ role: 'model', parts: [{ text }] });

/** What every request must satisfy whatever the history: Gemini rejects anything else. */
function expectWellFormed(contents: ReturnType<typeof buildContents>) {
  expect(contents.length).toBeGreaterThan(0);
  expect(contents[0]!.role).toBe('user');
  for (const [index, turn] of contents.entries()) {
    expect(['user', 'model']).toContain(turn.role!);
    expect(turn.parts).toHaveLength(1);
    expect(turn.parts![0]!.text!.trim()).not.toBe('');
    if (index > 0) expect(turn.role).not.toBe(contents[index - 1]!.role);
  }
}

describe('buildContents', () => {
  test('people are `username: text` user turns, answers are model turns, oldest first', () => {
    const history = [human('alice', 'hi all'), human('bob', '/bot what is 2+2?'), bot('4.'), human('alice', '/bot and 3+3?')];
    const contents = buildContents(history, wide);
    expect(contents).toEqual([user('alice: hi all\nbob: /bot what is 2+2?'), model('4.'), user('alice: /bot and 3+3?')]);
    expectWellFormed(contents);
  });

  test('consecutive same-role turns are merged, in order', () => {
    const contents = buildContents([human('a', '1'), human('b', '2'), bot('x'), bot('y'), human('c', '3')], wide);
    expect(contents).toEqual([user('a: 1\nb: 2'), model('x\ny'), user('c: 3')]);
  });

  test('keeps only the newest messages within the message budget', () => {
    const history = [human('a', 'one'), human('b', 'two'), human('c', 'three'), human('d', 'four'), human('e', '/bot five?')];
    expect(buildContents(history, { messages: 3, chars: 100_000 })).toEqual([user('c: three\nd: four\ne: /bot five?')]);
    expect(buildContents(history, { messages: 1, chars: 100_000 })).toEqual([user('e: /bot five?')]);
  });

  test('keeps only the newest messages within the character budget', () => {
    // turn texts: "a: 0123456789" (13), "b: abc" (6), "c: /bot q" (9)
    const history = [human('a', '0123456789'), human('b', 'abc'), human('c', '/bot q')];
    expect(buildContents(history, { messages: 100, chars: 15 })).toEqual([user('b: abc\nc: /bot q')]);
    expect(buildContents(history, { messages: 100, chars: 28 })).toEqual([user('a: 0123456789\nb: abc\nc: /bot q')]);
    expect(buildContents(history, { messages: 100, chars: 27 })).toEqual([user('b: abc\nc: /bot q')]);
  });

  test('a message that does not fit ends the window: nothing older is taken to fill it', () => {
    const history = [human('a', 'x'), human('b', 'a very long message that will not fit'), human('c', '/bot q')];
    expect(buildContents(history, { messages: 100, chars: 20 })).toEqual([user('c: /bot q')]);
  });

  test('the asking message is kept even when it alone exceeds the budget', () => {
    const long = `/bot ${'why '.repeat(50)}`;
    const contents = buildContents([human('a', 'earlier'), human('b', long)], { messages: 5, chars: 10 });
    expect(contents).toEqual([user(`b: ${long}`)]);
  });

  test('the conversation starts with a user turn even when the window starts on an answer', () => {
    // turn texts: "bob: /bot q1" (12), "A1" (2), "alice: x" (8), "bob: /bot q2" (12)
    const history = [human('bob', '/bot q1'), bot('A1'), human('alice', 'x'), human('bob', '/bot q2')];
    const contents = buildContents(history, { messages: 100, chars: 22 });
    expect(contents).toEqual([user('alice: x\nbob: /bot q2')]);
    expectWellFormed(contents);
    expect(buildContents(history, { messages: 3, chars: 100_000 })).toEqual([user('alice: x\nbob: /bot q2')]);
  });

  test('empty answers (stopped before any text) leave no empty part and do not split user turns', () => {
    const history = [human('a', '/bot one'), bot(''), bot('   '), human('b', '/bot two')];
    const contents = buildContents(history, wide);
    expect(contents).toEqual([user('a: /bot one\nb: /bot two')]);
    expectWellFormed(contents);
  });

  test('empty answers do not use the message budget', () => {
    const history = [human('a', 'first'), bot(''), human('b', '/bot q')];
    expect(buildContents(history, { messages: 2, chars: 100_000 })).toEqual([user('a: first\nb: /bot q')]);
  });

  test('the asking message appears exactly once', () => {
    const history = [human('a', 'hello'), bot('hi'), human('a', '/bot unique question 42')];
    for (const budget of [wide, { messages: 1, chars: 1 }, { messages: 2, chars: 100 }]) {
      const text = buildContents(history, budget)
        .flatMap((turn) => turn.parts!.map((part) => part.text))
        .join('\n');
      expect(text.split('/bot unique question 42')).toHaveLength(2);
    }
  });

  test('a message whose author is gone is attributed to "someone"', () => {
    expect(buildContents([human(null, 'orphan'), human('b', '/bot q')], wide)).toEqual([user('someone: orphan\nb: /bot q')]);
  });

  test('does not modify the history it is given', () => {
    const history = [human('a', '1'), human('b', '2'), bot('x'), human('c', '/bot 3')];
    const copy = structuredClone(history);
    buildContents(history, { messages: 3, chars: 100 });
    expect(history).toEqual(copy);
  });

  test('a long alternating history stays well formed under any budget', () => {
    const history: ContextMessage[] = [];
    for (let i = 0; i < 30; i++) {
      history.push(human(`u${i % 3}`, `message ${i}`));
      if (i % 4 === 1) history.push(bot(i % 8 === 1 ? '' : `answer ${i}`));
      if (i % 5 === 2) history.push(bot(`second answer ${i}`));
    }
    history.push(human('asker', '/bot final'));
    for (const messages of [1, 2, 3, 7, 50]) {
      for (const chars of [1, 20, 45, 100, 1000]) {
        const contents = buildContents(history, { messages, chars });
        expectWellFormed(contents);
        expect(contents.at(-1)!.role).toBe('user');
        expect(contents.at(-1)!.parts![0]!.text!.endsWith('asker: /bot final')).toBe(true);
      }
    }
  });
});

describe('systemInstruction', () => {
  test('says it is a group chat and names the asker and the room', () => {
    const text = systemInstruction('Weekend plans', 'alice');
    expect(text).toContain('group chat');
    expect(text).toContain('"Weekend plans"');
    expect(text).toContain('alice is asking you now');
    expect(text).toContain('name: text');
  });

  test('an unnamed chat is still a group chat', () => {
    const text = systemInstruction(null, 'bob');
    expect(text).toContain('group chat');
    expect(text).not.toContain('called');
    expect(text).toContain('bob');
  });
});

describe('botPrompt', () => {
  test('recognises /bot only as a whole word at the start', () => {
    expect(botPrompt('/bot what?')).toBe('what?');
    expect(botPrompt('/bot   spaced   ')).toBe('spaced');
    expect(botPrompt('/bot\nmultiline')).toBe('multiline');
    expect(botPrompt('/bot')).toBe('');
    expect(botPrompt('/bot   ')).toBe('');
    expect(botPrompt('/botany is fun')).toBeNull();
    expect(botPrompt('hello /bot')).toBeNull();
    expect(botPrompt('/Bot hi')).toBeNull();
  });
});
