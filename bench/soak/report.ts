import { num, table } from '../lib/table';
import type { DeliveryCheck } from './delivery-audit';
import { clock, mb, ms } from './format';
import type { StoredCheck } from './ledger';
import type { SteadyResult } from './steady';
import { MAX_IN_FLIGHT } from './ws-load';

/** Below this, the slope follows the backlog's swings more than any leak. */
const SHORTEST_MEANINGFUL_SLOPE_SECONDS = 600;

const list = (ids: number[]) => (ids.length ? ` (${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''})` : '');

/** Prints the final tables; returns what makes the soak fail (empty when it passed). */
export function report(peak: { rate: number; measured: boolean }, result: SteadyResult, stored: StoredCheck, deliveries: DeliveryCheck): string[] {
  const { run, rss, steadySeconds } = result;
  const { tally } = run;
  const totals = tally.totals;
  const half = steadySeconds / 2;
  const secondHalf = rss.samples.filter((sample) => sample.seconds >= half).map((sample) => sample.mb);
  const latency = tally.ackLatencyMs.summary();
  const firstChunk = tally.botFirstChunkMs.summary();
  const answerTime = tally.botAnswerMs.summary();
  const cores = `${num(result.cpu.serverCores, 2)} / ${num(result.cpu.clientCores, 2)} / ${num(result.cpu.otherCores, 2)}`;

  console.log('\nMemory (server VmRSS, sampled every second)');
  console.log(
    table(
      ['', 'MB'],
      [
        ['at the start of the load', mb(rss.at(0))],
        [`at half time (${clock(half)})`, mb(rss.at(half))],
        ['at the end', mb(rss.latest())],
        ['second half min / max', `${mb(Math.min(...secondHalf))} / ${mb(Math.max(...secondHalf))}`],
        ['peak (VmHWM, whole life)', mb(result.peakRssMb)],
        ['slope over the second half, least squares', `${num(rss.slopeMbPerHour(half), 1)} MB/h`],
      ],
    ),
  );
  if (steadySeconds < SHORTEST_MEANINGFUL_SLOPE_SECONDS) {
    console.log('  A run this short mostly measures the backlog rising and falling: read the slope from a 30-minute run.');
  }

  console.log('\nLoad');
  console.log(
    table(
      ['', 'value'],
      [
        ['peak /ws messages/s (acknowledged)', `${num(peak.rate, 0)} (${peak.measured ? 'measured by the burst' : 'given with --peak'})`],
        ['target / achieved messages/s', `${num(result.targetRate, 0)} / ${num(totals.acked / steadySeconds, 0)}`],
        ['sent / acknowledged / unconfirmed (socket closed first)', `${num(totals.sent, 0)} / ${num(totals.acked, 0)} / ${num(tally.unconfirmed, 0)}`],
        [`not sent (every sender had ${MAX_IN_FLIGHT} in flight: server behind)`, num(tally.notSent, 0)],
        ['ack latency p50 / p99 / max ms', `${ms(latency.p50)} / ${ms(latency.p99)} / ${ms(latency.max)}`],
        ['message deliveries /ws / graphql-ws', `${num(totals.wsDeliveries, 0)} / ${num(totals.graphqlDeliveries, 0)}`],
        ['bot_stream frames delivered', num(totals.botChunkDeliveries, 0)],
        ['/ws rejoins with after / graphql-ws resubscriptions', `${num(totals.wsReconnects, 0)} / ${num(totals.graphqlReconnects, 0)}`],
        ['bot asks sent / answers completed / unanswered at the end', `${totals.botAsks} / ${totals.botAnswers} / ${result.unansweredAsks}`],
        ['bot first chunk p50 / p99 / max ms (after the ask was sent)', `${ms(firstChunk.p50)} / ${ms(firstChunk.p99)} / ${ms(firstChunk.max)}`],
        ['bot whole answer p50 / p99 ms', `${ms(answerTime.p50)} / ${ms(answerTime.p99)}`],
        ['REST logins / history reads', `${totals.logins} / ${totals.historyReads}`],
        ['CPU cores server / client / other', cores],
      ],
    ),
  );

  console.log('\nErrors by kind');
  if (tally.errors.size === 0) console.log('  none');
  else
    console.log(
      table(
        ['kind', 'count', 'first example'],
        [...tally.errors].map(([kind, { count, example }]) => [kind, count, example || '—']),
      ),
    );

  console.log('\nAcknowledged vs stored (the SQLite file, read after the server stopped)');
  console.log(
    table(
      ['', 'value'],
      [
        ['acknowledged (echo with message_id)', num(stored.acknowledged, 0)],
        ['stored with the echoed content', num(stored.stored, 0)],
        ['missing', `${num(stored.missing.length, 0)}${list(stored.missing)}`],
        ['stored with other content', `${num(stored.mismatched.length, 0)}${list(stored.mismatched)}`],
        ['connections audited (ids rising, none skipped)', num(deliveries.connections, 0)],
        ['user messages a connection missed', `${num(deliveries.missed, 0)}${deliveries.examples.length ? ` (${deliveries.examples.join('; ')})` : ''}`],
        ['missed beyond the 1,000-message catch-up limit', num(deliveries.missedBeyondLimit, 0)],
        ['server exit', `${result.exit}${result.serverDied ? ' — DIED during the load' : ''}`],
        ['server stderr lines', result.serverLogLines.length],
      ],
    ),
  );
  if (result.serverLogLines.length) console.log(`  first server stderr lines:\n    ${result.serverLogLines.slice(0, 8).join('\n    ')}`);

  const failures: string[] = [];
  if (stored.missing.length) failures.push(`${stored.missing.length} acknowledged messages missing from the database`);
  if (stored.mismatched.length) failures.push(`${stored.mismatched.length} acknowledged messages stored with other content`);
  if (result.serverDied) failures.push('the server died during the load');
  return failures;
}
