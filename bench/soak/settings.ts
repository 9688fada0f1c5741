import { parseArgs } from 'node:util';

const DEFAULTS = {
  minutes: 10,
  rooms: 8,
  senders: 2,
  churners: 3,
  'graphql-subscribers': 4,
  'peak-seconds': 5,
  'bot-every': 20,
  'bot-chunks': 40,
  'bot-chunk-delay-ms': 25,
  'login-every': 10,
  'history-every': 2,
};

const HELP = `bun bench/soak.ts [flags]   (npm run soak -- [flags])

  --minutes N            length of the steady phase (default ${DEFAULTS.minutes}; also SOAK_MINUTES=N)
  --seconds N            the same in seconds, for a quick check (wins over --minutes)
  --peak N               take N acknowledged /ws messages a second as the peak instead of measuring it
  --peak-seconds N       length of the burst that measures the peak (default ${DEFAULTS['peak-seconds']}, after 1 s warm-up)
  --rooms N              rooms (default ${DEFAULTS.rooms})
  --senders N            members per room who stay and send (default ${DEFAULTS.senders}; the first also asks the bot)
  --churners N           members per room who leave and rejoin with "after" in a loop (default ${DEFAULTS.churners})
  --graphql-subscribers N  graphql-ws messageAdded subscribers, reconnecting every 5–15 s (default ${DEFAULTS['graphql-subscribers']})
  --bot-every N          seconds between /bot asks in each room (default ${DEFAULTS['bot-every']})
  --bot-chunks N --bot-chunk-delay-ms N   the Gemini stand-in's answer (default ${DEFAULTS['bot-chunks']} × ${DEFAULTS['bot-chunk-delay-ms']} ms)
  --login-every N        seconds between REST logins (default ${DEFAULTS['login-every']}; argon2id makes each expensive)
  --history-every N      seconds between REST history reads (default ${DEFAULTS['history-every']})
  --report-every N       seconds between progress rows (default: a tenth of the run, 5–60 s)
  --keep                 keep the temp dir (databases, server logs)

Exits 1 when an acknowledged message is missing from the database or the server died.`;

export interface Settings {
  seconds: number;
  peak: number | null;
  peakSeconds: number;
  rooms: number;
  senders: number;
  churners: number;
  graphqlSubscribers: number;
  botEverySeconds: number;
  botChunks: number;
  botChunkDelayMs: number;
  loginEverySeconds: number;
  historyEverySeconds: number;
  reportEverySeconds: number;
  keep: boolean;
}

/** The command line (and SOAK_MINUTES), checked: a bad value stops the soak before anything starts. */
export function settings(): Settings {
  const numeric = [...Object.keys(DEFAULTS), 'seconds', 'peak', 'report-every'];
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(numeric.map((name) => [name, { type: 'string' as const }])),
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const raw = values as Record<string, unknown> as Record<string, string | undefined>;
  const positive = (name: string, value: string | undefined, { whole = true, zero = false } = {}): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < 0 || (parsed === 0 && !zero) || (whole && !Number.isInteger(parsed))) {
      throw new Error(`${name}=${value}: expected a ${zero ? 'non-negative' : 'positive'} ${whole ? 'whole ' : ''}number`);
    }
    return parsed;
  };
  // A room can do without churners, and the load without graphql-ws subscribers.
  const pick = (name: keyof typeof DEFAULTS) =>
    positive(`--${name}`, raw[name], { zero: name === 'churners' || name === 'graphql-subscribers' }) ?? DEFAULTS[name];
  const minutes =
    positive('--minutes', raw.minutes, { whole: false }) ?? positive('SOAK_MINUTES', process.env.SOAK_MINUTES, { whole: false }) ?? DEFAULTS.minutes;
  const seconds = positive('--seconds', raw.seconds) ?? Math.max(1, Math.round(minutes * 60));
  return {
    seconds,
    peak: positive('--peak', raw.peak, { whole: false }) ?? null,
    peakSeconds: pick('peak-seconds'),
    rooms: pick('rooms'),
    senders: pick('senders'),
    churners: pick('churners'),
    graphqlSubscribers: pick('graphql-subscribers'),
    botEverySeconds: pick('bot-every'),
    botChunks: pick('bot-chunks'),
    botChunkDelayMs: pick('bot-chunk-delay-ms'),
    loginEverySeconds: pick('login-every'),
    historyEverySeconds: pick('history-every'),
    reportEverySeconds: positive('--report-every', raw['report-every']) ?? Math.min(60, Math.max(5, Math.round(seconds / 10))),
    keep: values.keep ?? false,
  };
}
