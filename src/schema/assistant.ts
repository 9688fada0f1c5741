import type { AssistantMemory } from '../services/bot/assistant.service';
import type { UsageReport, UsageTotals } from '../services/bot/usage.service';
import type { AnswerVersion } from '../services/bot/answer-versions';
import type { AnswerSource, AssistantEvent, AssistantView } from '../services/pubsub';
import { parseSources } from '../serializers';
import { builder } from './builder';

export const AnswerSourceRef = builder.objectRef<AnswerSource>('AnswerSource').implement({
  description: 'A web page a grounded answer drew on.',
  fields: (t) => ({ title: t.exposeString('title'), url: t.exposeString('url') }),
});

export const AssistantRef = builder.objectRef<AssistantView>('Assistant').implement({
  description: "One of a chat's assistants: `/bot …` asks the default one, `/bot @name …` the one named, `@name …` one that answers mentions.",
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    name: t.exposeString('name', { description: "Its display name, its answers' author." }),
    instructions: t.exposeString('instructions', { description: "The owner's instructions, sent as the model's system instruction." }),
    model: t.exposeString('model', { description: 'One of BOT_MODELS.' }),
    temperature: t.exposeFloat('temperature', { nullable: true, description: "0 to 2; null for the model's default." }),
    answersMentions: t.exposeBoolean('answersMentions'),
    grounding: t.exposeBoolean('grounding', { description: 'Google Search grounding: answers carry their sources.' }),
    isDefault: t.exposeBoolean('isDefault'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

export const AssistantMemoryRef = builder.objectRef<AssistantMemory>('AssistantMemory').implement({
  description: "An assistant's summary of the chat's older messages, leading its later contexts.",
  fields: (t) => ({
    assistantId: t.exposeID('assistantId'),
    summary: t.exposeString('summary', { nullable: true }),
    upToMessageId: t.exposeID('upToMessageId', { nullable: true }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', nullable: true }),
  }),
});

const AssistantChangeRef = builder.enumType('AssistantChange', {
  values: { UPDATED: { value: 'updated' }, DELETED: { value: 'deleted' }, MEMORY_CLEARED: { value: 'memory_cleared' } } as const,
});

export const AssistantEventRef = builder.objectRef<AssistantEvent>('AssistantEvent').implement({
  description: "A change to a chat's assistants: one created or changed (`assistant` as it is now), deleted, or its memory cleared.",
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    kind: t.expose('kind', { type: AssistantChangeRef }),
    assistantId: t.id({ resolve: (event) => (event.kind === 'updated' ? event.assistant.id : event.assistantId) }),
    assistant: t.field({ type: AssistantRef, nullable: true, resolve: (event) => (event.kind === 'updated' ? event.assistant : null) }),
  }),
});

export const AnswerVersionRef = builder.objectRef<AnswerVersion>('AnswerVersion').implement({
  description: 'One version of a regenerated answer; 1 is the first written.',
  fields: (t) => ({
    version: t.exposeInt('version'),
    content: t.exposeString('content'),
    sources: t.field({ type: [AnswerSourceRef], resolve: (version) => parseSources(version.sources) }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const UsageTotalsRef = builder.objectRef<UsageTotals>('UsageTotals').implement({
  description: 'Token counts as the model reported them (answers and memory summaries), and time spent.',
  fields: (t) => ({
    answers: t.exposeInt('answers'),
    promptTokens: t.exposeInt('promptTokens'),
    answerTokens: t.exposeInt('answerTokens'),
    totalTokens: t.exposeInt('totalTokens'),
    durationMs: t.exposeInt('durationMs'),
  }),
});
const AssistantUsageRef = builder.objectRef<UsageReport['byAssistant'][number]>('AssistantUsage').implement({
  fields: (t) => ({
    assistantId: t.exposeID('assistantId', { nullable: true, description: 'null: the built-in bot' }),
    name: t.exposeString('name', { nullable: true }),
    usage: t.field({ type: UsageTotalsRef, resolve: (row) => row }),
  }),
});
const UserUsageRef = builder.objectRef<UsageReport['byUser'][number]>('UserUsage').implement({
  fields: (t) => ({
    userId: t.exposeID('userId'),
    username: t.exposeString('username', { nullable: true }),
    usage: t.field({ type: UsageTotalsRef, resolve: (row) => row }),
  }),
});

export const UsageReportRef = builder.objectRef<UsageReport>('UsageReport').implement({
  description: "What a chat's bot calls cost in a period, as the model reported: totals, by assistant and by asking user.",
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    from: t.expose('from', { type: 'DateTime' }),
    to: t.expose('to', { type: 'DateTime' }),
    total: t.field({ type: UsageTotalsRef, resolve: (report) => report.total }),
    byAssistant: t.field({ type: [AssistantUsageRef], resolve: (report) => report.byAssistant }),
    byUser: t.field({ type: [UserUsageRef], resolve: (report) => report.byUser }),
  }),
});

export const AssistantInputRef = builder.inputType('AssistantInput', {
  description: 'Settings of an assistant: on creation only `name` is required; on a change, the fields given change.',
  fields: (t) => ({
    name: t.string(),
    instructions: t.string(),
    model: t.string(),
    temperature: t.float(),
    answersMentions: t.boolean(),
    grounding: t.boolean(),
    isDefault: t.boolean(),
  }),
});
