import type { GoogleGenAI } from '@google/genai';
import type { Config } from '../config';

/**
 * The Gemini SDK's client, loaded on the first answer: a server whose rooms never ask the bot does
 * not hold the SDK's code. Null without GEMINI_API_KEY.
 */
export function lazyGemini({ apiKey, baseUrl }: Config['gemini']): (() => Promise<GoogleGenAI>) | null {
  if (!apiKey) return null;
  let client: Promise<GoogleGenAI> | undefined;
  return () => (client ??= import('@google/genai').then(({ GoogleGenAI }) => new GoogleGenAI({ apiKey, httpOptions: baseUrl ? { baseUrl } : undefined })));
}

/** The SDK's HTTP error (Gemini answered with an error status), told by its name so the SDK need not be loaded to ask. */
export const isGeminiApiError = (error: unknown): error is Error & { status: number } =>
  error instanceof Error && error.name === 'ApiError' && typeof (error as { status?: unknown }).status === 'number';
