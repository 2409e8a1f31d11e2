// The reference of tests/benchmarks: Castore's own @castore/lib-dam 2.4.2 pouring a
// PostgreSQL store (Castore's own adapter, 2.4.2) into a counting message channel.
//
// Environment
//   PG_URL          postgres connection URL (postgresql://user[:password]@host:port/dbname)
//   PG_TABLE        the adapter's tableName option (Castore's layout)
//   EVENT_STORE_ID  the aggregate_name to pour
//   TIME_CAP_S      stop after this many seconds and report the partial count (default: none)
//
// Prints ONE JSON document on stdout:
//   {"counted": N, "seconds": S, "capped": bool, "result": {...lib-dam result...} | null}
// "seconds" is measured inside node around pourEventStoreEvents only (connection set-up and
// module loading excluded). When capped, "counted" is what the channel had received then.

import { EventStore, EventType } from '@castore/core';
import { PostgresEventStorageAdapter } from '@castore/event-storage-adapter-postgres';
import { pourEventStoreEvents } from '@castore/lib-dam';

const url = process.env.PG_URL;
const tableName = process.env.PG_TABLE ?? 'event';
const eventStoreId = process.env.EVENT_STORE_ID ?? 'POKEMONS';
const timeCapSeconds = process.env.TIME_CAP_S ? Number(process.env.TIME_CAP_S) : undefined;

if (!url) {
  process.stderr.write('PG_URL is required\n');
  process.exit(2);
}

const adapter = new PostgresEventStorageAdapter({ connectionString: url, tableName });
const eventStore = new EventStore({
  eventStoreId,
  // lib-dam never reduces: the event types and the reducer only satisfy the constructor.
  eventTypes: [new EventType({ type: 'APPEARED' })],
  reducer: (aggregate, event) => ({ ...aggregate, version: event.version }),
  eventStorageAdapter: adapter,
});

// A message channel that only counts (lib-dam calls publishMessage once per message).
let counted = 0;
const countingChannel = {
  messageChannelId: 'counting',
  publishMessage: async () => {
    counted += 1;
  },
  publishMessages: async (messages) => {
    counted += messages.length;
  },
};

// Warm the connection pool so that the timed part does not include the TCP/auth handshake.
await eventStore.listAggregateIds({ limit: 1 });

const started = process.hrtime.bigint();
const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;

const report = (document) => {
  process.stdout.write(`${JSON.stringify(document)}\n`);
};

if (timeCapSeconds !== undefined) {
  setTimeout(() => {
    report({ counted, seconds: elapsed(), capped: true, result: null });
    process.exit(0);
  }, timeCapSeconds * 1000).unref();
}

const result = await pourEventStoreEvents({ eventStore, messageChannel: countingChannel });
report({ counted, seconds: elapsed(), capped: false, result });
process.exit(0);
