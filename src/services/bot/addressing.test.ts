import { describe, expect, test } from 'bun:test';
import { botPrompt, parseAddress } from './addressing';

describe('parseAddress', () => {
  test('/bot asks the default, /bot @name and @name the one named', () => {
    expect(parseAddress('/bot hello')).toEqual({ name: null, prompt: 'hello', viaBot: true });
    expect(parseAddress('/bot @Chef what now?')).toEqual({ name: 'chef', prompt: 'what now?', viaBot: true });
    expect(parseAddress('@chef what now?')).toEqual({ name: 'chef', prompt: 'what now?', viaBot: false });
    expect(parseAddress('/bot')).toEqual({ name: null, prompt: '', viaBot: true });
  });

  test('anything else is no ask', () => {
    expect(parseAddress('/botany')).toBeNull();
    expect(parseAddress('hi @chef')).toBeNull();
    expect(parseAddress('email@chef')).toBeNull();
    expect(botPrompt('say /bot')).toBeNull();
  });
});
