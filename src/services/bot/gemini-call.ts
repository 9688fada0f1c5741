import type { Content, GenerateContentConfig, GenerateContentResponse, GoogleGenAI } from '@google/genai';
import type { AnswerSource } from '../pubsub';

/** One call of the model, as an answer or a memory summary makes it. */
export interface ModelCall {
  model: string;
  contents: Content[];
  instruction: string;
  temperature: number | null;
  /** Google Search grounding: the answer's sources come in its grounding metadata. */
  grounding: boolean;
  signal: AbortSignal;
}

/** Why the model gave no answer: it blocked the prompt or the answer. */
export class ModelDeclined extends Error {}

const BLOCKING_FINISH_REASONS = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII']);
const blockedFinish = (reason: string | undefined) => (reason && BLOCKING_FINISH_REASONS.has(reason) ? reason : undefined);

/** The request's config: instructions in `systemInstruction` (never in a turn), temperature only when set, the search tool when grounded. */
export function callConfig(call: ModelCall): GenerateContentConfig {
  return {
    systemInstruction: call.instruction,
    abortSignal: call.signal,
    ...(call.temperature === null ? {} : { temperature: call.temperature }),
    ...(call.grounding ? { tools: [{ googleSearch: {} }] } : {}),
  };
}

/** The web sources a chunk's grounding metadata names, added to `into` once each (by URL), in order. */
export function collectSources(chunk: GenerateContentResponse, into: AnswerSource[]): void {
  for (const grounding of chunk.candidates?.[0]?.groundingMetadata?.groundingChunks ?? []) {
    const url = grounding.web?.uri;
    if (!url || into.some((source) => source.url === url)) continue;
    into.push({ title: grounding.web?.title ?? url, url });
  }
}

/** The model's chunks; throws ModelDeclined when it blocks the prompt or the answer. */
export async function* modelChunks(client: GoogleGenAI, call: ModelCall): AsyncGenerator<GenerateContentResponse> {
  const response = await client.models.generateContentStream({ model: call.model, contents: call.contents, config: callConfig(call) });
  for await (const chunk of response) {
    const blocked = chunk.promptFeedback?.blockReason ?? blockedFinish(chunk.candidates?.[0]?.finishReason);
    if (blocked) throw new ModelDeclined(`Gemini declined to answer (${blocked})`);
    yield chunk;
  }
}
