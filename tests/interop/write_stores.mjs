// Conformance fixture: write the same events through Castore 2.4.2 itself into
// PostgreSQL, DynamoDB (single-table layout) and DynamoDB (legacy, one table per
// event store), read them back with Castore's own API, and print ONE JSON
// document on stdout. Nothing else is printed on stdout (diagnostics go to stderr).
//
// Environment
//   BACKENDS                 comma list among postgres,dynamodb_single_table,dynamodb_legacy
//                            (default: all three)
//   PG_DSN                   postgres connection string (required for "postgres")
//   PG_TABLE                 table name (default "event"). The table is DROPPED and
//                            re-created with PostgresEventStorageAdapter.dropEventTable /
//                            createEventTable (adapter defaults: BIGSERIAL id,
//                            VARCHAR(32) aggregate_name, UUID aggregate_id, BIGINT version,
//                            VARCHAR(64) type). Aggregate ids below are therefore UUIDs.
//   DYNAMODB_ENDPOINT        e.g. http://127.0.0.1:5055 (moto server); region us-east-1,
//                            fake credentials unless AWS_ACCESS_KEY_ID is set
//   DDB_SINGLE_TABLE         single-table layout table (default "castore-interop-events")
//   DDB_LEGACY_TABLE_PREFIX  legacy layout: one table per store, named
//                            <prefix><eventStoreId> (default "castore-interop-legacy-")
//   DynamoDB tables are deleted if they exist and re-created with the key schema and
//   the KEYS_ONLY GSI "initialEvents" the adapters expect.
//
// Output shape (JSON, UTF-8):
// {
//   "castoreVersion": "2.4.2",
//   "eventStoreIds": ["POKEMONS", "TRAINERS"],
//   "written": [ { "eventStoreId": S, "via": "pushEvent" | "pushEventGroup",
//                  "group": N | null, "event": <event detail as passed to Castore> }, ... ],
//                  // in write order; per store the aggregates are
//                  // written[i].event.aggregateId
//   "notes": { "falsyPayload": {...}, ... }          // human-readable facts, see NOTES
//   "listAggregateIdsOptionSets": { <name>: <options object> },
//   "getEventsOptionSets":        { <name>: <options object> },
//   "postgres" | "dynamodb_single_table" | "dynamodb_legacy": {     // only requested backends
//     "<eventStoreId>": {
//       "listAggregateIds": {
//         "<option set name>": {
//           "pages": [ { "aggregateIds": [ {"aggregateId": S, "initialEventTimestamp": S} ],
//                        "hasNextPage": bool } ],        // one entry per call, page tokens
//                                                        // followed until absent (max 50)
//           "aggregateIds": [ ...all pages concatenated... ]
//         }                                             // or { "error": S } if Castore threw
//       },
//       "getEvents": {
//         "<aggregateId>": { "<option set name>": [ <event detail>, ... ] | { "error": S } }
//       }
//     }
//   }
//   A backend whose setup failed is { "error": S } instead.
// }
// Event details are exactly what Castore returned (key order may differ; compare as JSON
// values). Absent payload/metadata are absent keys.

import { EventStore, EventType } from '@castore/core';
import { PostgresEventStorageAdapter } from '@castore/event-storage-adapter-postgres';
import {
  DynamoDBSingleTableEventStorageAdapter,
  LegacyDynamoDBEventStorageAdapter,
} from '@castore/event-storage-adapter-dynamodb';
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

const ALL_BACKENDS = ['postgres', 'dynamodb_single_table', 'dynamodb_legacy'];
const POKEMONS = 'POKEMONS';
const TRAINERS = 'TRAINERS';

// ---------------------------------------------------------------------------
// Fixed data
// ---------------------------------------------------------------------------

// Lowercase UUIDs: the postgres adapter's default aggregate_id column is UUID and
// PostgreSQL returns UUIDs lowercase.
const ID = {
  pikachu: '00000000-0000-4000-8000-000000000001',
  charmander: '00000000-0000-4000-8000-000000000002',
  bulbasaur: '00000000-0000-4000-8000-000000000003',
  squirtle: '00000000-0000-4000-8000-000000000004',
  eevee: '00000000-0000-4000-8000-000000000005',
  magikarp: '00000000-0000-4000-8000-000000000006',
  staryu: '00000000-0000-4000-8000-000000000007',
  ash: '10000000-0000-4000-8000-000000000001',
  brock: '10000000-0000-4000-8000-000000000002',
  misty: '10000000-0000-4000-8000-000000000003',
};

// Three POKEMONS aggregates share one initial-event millisecond (TIE): with limit 2,
// Castore's postgres paging (timestamp > last) skips one of them.
const TIE = '2022-01-02T10:00:00.123Z';

const NOTES = {
  falsyPayload:
    'POKEMONS/' +
    ID.magikarp +
    ' version 2 (MAGIKARP_SPLASHED) is written with payload 0. The DynamoDB adapters ' +
    'return payload 0; Castore\'s postgres adapter stores jsonb 0 but drops it on read ' +
    '(toEventDetail deletes falsy payload/metadata), so it comes back without "payload". ' +
    'A correct reader keeps it (only SQL NULL means absent).',
  falsyPayloadWhyNotFalse:
    'payload false cannot be written through the postgres adapter: postgres.js sends a JS ' +
    'boolean as a bool parameter, which PostgreSQL refuses for a jsonb column.',
  postgresTiePaging:
    'Aggregates ' +
    [ID.charmander, ID.bulbasaur, ID.squirtle].join(', ') +
    ' share the initial timestamp ' +
    TIE +
    '. Castore\'s postgres listAggregateIds pages with "timestamp > last timestamp", so ' +
    'the paged option sets can skip tied aggregates; DynamoDB pages with LastEvaluatedKey.',
  postgresBoundsExclusive:
    'Castore\'s postgres initialEventAfter/Before are exclusive (>, <); the DynamoDB ' +
    'adapters are inclusive (>=, <=, between).',
  dynamodbLimitIgnored:
    'Castore\'s DynamoDB getEvents sends Limit but then follows LastEvaluatedKey until ' +
    'exhausted, so "limit" does not cap the number of events returned there.',
  pushEventGroup:
    'written entries with via=pushEventGroup were pushed in one EventStore.pushEventGroup ' +
    'call spanning both stores (group number in "group").',
};

// Each entry: [eventStoreId, eventDetail]. Order = write order.
const SINGLE_EVENTS = [
  [POKEMONS, {
    aggregateId: ID.pikachu, version: 1, type: 'POKEMON_APPEARED',
    timestamp: '2022-01-01T00:00:00.000Z',
    payload: {
      name: 'Pikachu ⚡', level: 5, weightKg: 6.1, shiny: false, nickname: null,
      types: ['electric'], stats: { hp: 35, attack: 55, speedRatio: 0.9 },
    },
  }],
  [POKEMONS, {
    aggregateId: ID.pikachu, version: 2, type: 'POKEMON_LEVELED_UP',
    timestamp: '2022-01-01T12:30:45.678Z',
    payload: { levels: 1, newLevel: 6 },
    metadata: { correlationId: 'c0ffee', actor: { kind: 'trainer', id: ID.ash } },
  }],
  [POKEMONS, {
    aggregateId: ID.charmander, version: 1, type: 'POKEMON_APPEARED', timestamp: TIE,
    payload: { name: 'Salamèche', level: 1, temperatureC: -273.15, tiny: 1.5e-7 },
  }],
  [POKEMONS, {
    aggregateId: ID.bulbasaur, version: 1, type: 'POKEMON_APPEARED', timestamp: TIE,
    payload: { name: 'フシギダネ', level: 1, nested: { a: { b: { c: [1, [2, [3, null]]] } } } },
  }],
  [POKEMONS, {
    aggregateId: ID.squirtle, version: 1, type: 'POKEMON_APPEARED', timestamp: TIE,
    payload: { name: '杰尼龟 🐢', level: 1, maxSafe: 9007199254740991, negative: -42, empty: '' },
  }],
  [POKEMONS, {
    aggregateId: ID.bulbasaur, version: 2, type: 'POKEMON_CAUGHT', timestamp: '2022-01-03T00:00:00.000Z',
  }],
  // Same millisecond as version 2: order within an aggregate must follow the version.
  [POKEMONS, {
    aggregateId: ID.bulbasaur, version: 3, type: 'POKEMON_RELEASED', timestamp: '2022-01-03T00:00:00.000Z',
    metadata: { reason: 'trop de Pokémon', flags: [true, false, null] },
  }],
  [POKEMONS, {
    aggregateId: ID.bulbasaur, version: 4, type: 'POKEMON_APPEARED_AGAIN', timestamp: '2022-01-04T08:00:00.001Z',
    payload: { emptyObject: {}, emptyList: [], unicodeKey: { 'clé_ü_日本': 'valeur ✓' } },
    metadata: {},
  }],
  [POKEMONS, {
    aggregateId: ID.eevee, version: 1, type: 'POKEMON_APPEARED', timestamp: '2022-02-01T00:00:00.000Z',
    payload: {
      name: 'Évoli', localNames: { ja: 'イーブイ', zh: '伊布', ko: '이브이', emoji: '🦊✨' },
      evolutions: [{ name: 'Vaporeon', stone: 'water' }, { name: 'Jolteon', stone: 'thunder' }],
      ratio: 0.125, caught: true, trainer: null,
    },
  }],
  [POKEMONS, {
    aggregateId: ID.eevee, version: 2, type: 'POKEMON_LEVELED_UP', timestamp: '2022-02-01T00:00:01.000Z',
    payload: { levels: 2 },
  }],
  [POKEMONS, {
    aggregateId: ID.eevee, version: 3, type: 'POKEMON_LEVELED_UP', timestamp: '2022-02-01T00:00:02.000Z',
    payload: { levels: 3 },
  }],
  [POKEMONS, {
    aggregateId: ID.magikarp, version: 1, type: 'POKEMON_APPEARED', timestamp: '2022-03-01T00:00:00.000Z',
    payload: { name: 'Magikarp', level: 0 },
  }],
  [POKEMONS, {
    aggregateId: ID.magikarp, version: 2, type: 'MAGIKARP_SPLASHED', timestamp: '2022-03-01T00:00:00.500Z',
    payload: 0, // falsy payload: see NOTES.falsyPayload
  }],
  [TRAINERS, {
    aggregateId: ID.ash, version: 1, type: 'TRAINER_REGISTERED',
    // Same millisecond as pikachu's initial event, but in the other store.
    timestamp: '2022-01-01T00:00:00.000Z',
    payload: { name: 'Ash Ketchum', hometown: 'Bourg Palette', badges: 0 },
  }],
  [TRAINERS, {
    aggregateId: ID.brock, version: 1, type: 'TRAINER_REGISTERED', timestamp: '2022-01-15T09:00:00.250Z',
    payload: { name: 'Brock', hometown: 'Argenta' },
    metadata: { source: 'import', batch: 7 },
  }],
];

// Pushed with EventStore.pushEventGroup: one group spanning both stores.
const GROUPED_EVENTS = [
  [TRAINERS, {
    aggregateId: ID.ash, version: 2, type: 'TRAINER_CAUGHT_POKEMON', timestamp: '2022-04-01T15:00:00.999Z',
    payload: { pokemonId: ID.staryu, ball: 'Poké Ball' },
  }],
  [POKEMONS, {
    aggregateId: ID.staryu, version: 1, type: 'POKEMON_APPEARED', timestamp: '2022-04-01T15:00:00.999Z',
    payload: { name: 'Stari ⭐', level: 12 },
    metadata: { caughtBy: ID.ash },
  }],
  [TRAINERS, {
    aggregateId: ID.misty, version: 1, type: 'TRAINER_REGISTERED', timestamp: '2022-04-01T15:00:00.999Z',
    payload: { name: 'Ondine', hometown: 'Azuria' },
  }],
];

const LIST_OPTION_SETS = {
  all: {},
  reverse: { reverse: true },
  limit2: { limit: 2 },
  limit2Reverse: { limit: 2, reverse: true },
  limit1: { limit: 1 },
  initialEventAfterTie: { initialEventAfter: TIE },
  initialEventBeforeTie: { initialEventBefore: TIE },
  betweenTieAndEevee: { initialEventAfter: TIE, initialEventBefore: '2022-02-01T00:00:00.000Z' },
};

const GET_EVENTS_OPTION_SETS = {
  all: {},
  reverse: { reverse: true },
  minVersion2: { minVersion: 2 },
  maxVersion2: { maxVersion: 2 },
  minVersion2MaxVersion3: { minVersion: 2, maxVersion: 3 },
  limit2: { limit: 2 },
  limit1Reverse: { limit: 1, reverse: true },
  minVersion2Reverse: { minVersion: 2, reverse: true },
  minVersion2Limit1: { minVersion: 2, limit: 1 },
};

const MAX_PAGES = 50;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const log = (...args) => console.error('[write_stores]', ...args);
const clone = (value) => JSON.parse(JSON.stringify(value));
const errorText = (error) => `${error?.name ?? 'Error'}: ${error?.message ?? String(error)}`;

const makeStores = (adapterFor) => {
  const reducer = (aggregate, event) => ({
    aggregateId: event.aggregateId,
    version: event.version,
  });
  const make = (eventStoreId, types) =>
    new EventStore({
      eventStoreId,
      eventTypes: types.map((type) => new EventType({ type })),
      reducer,
      eventStorageAdapter: adapterFor(eventStoreId),
    });
  const allEvents = [...SINGLE_EVENTS, ...GROUPED_EVENTS];
  const typesOf = (storeId) => [
    ...new Set(allEvents.filter(([id]) => id === storeId).map(([, event]) => event.type)),
  ];
  return { [POKEMONS]: make(POKEMONS, typesOf(POKEMONS)), [TRAINERS]: make(TRAINERS, typesOf(TRAINERS)) };
};

const writeAll = async (stores) => {
  for (const [storeId, event] of SINGLE_EVENTS) {
    await stores[storeId].pushEvent(clone(event));
  }
  await EventStore.pushEventGroup(
    ...GROUPED_EVENTS.map(([storeId, event]) => stores[storeId].groupEvent(clone(event))),
  );
};

const readAll = async (stores) => {
  const result = {};
  for (const storeId of [POKEMONS, TRAINERS]) {
    const store = stores[storeId];
    const listing = {};
    for (const [name, options] of Object.entries(LIST_OPTION_SETS)) {
      try {
        const pages = [];
        let pageToken;
        do {
          const response = await store.listAggregateIds(
            pageToken === undefined ? { ...options } : { ...options, pageToken },
          );
          pageToken = response.nextPageToken;
          pages.push({ aggregateIds: response.aggregateIds, hasNextPage: pageToken !== undefined });
        } while (pageToken !== undefined && pages.length < MAX_PAGES);
        listing[name] = { pages, aggregateIds: pages.flatMap((page) => page.aggregateIds) };
      } catch (error) {
        listing[name] = { error: errorText(error) };
      }
    }
    const writtenIds = [
      ...new Set(
        [...SINGLE_EVENTS, ...GROUPED_EVENTS]
          .filter(([id]) => id === storeId)
          .map(([, event]) => event.aggregateId),
      ),
    ];
    const events = {};
    for (const aggregateId of writtenIds) {
      events[aggregateId] = {};
      for (const [name, options] of Object.entries(GET_EVENTS_OPTION_SETS)) {
        try {
          events[aggregateId][name] = (await store.getEvents(aggregateId, { ...options })).events;
        } catch (error) {
          events[aggregateId][name] = { error: errorText(error) };
        }
      }
    }
    result[storeId] = { listAggregateIds: listing, getEvents: events };
  }
  return result;
};

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

const runPostgres = async () => {
  const connectionString = process.env.PG_DSN;
  if (!connectionString) throw new Error('PG_DSN is not set');
  const tableName = process.env.PG_TABLE || 'event';
  await PostgresEventStorageAdapter.dropEventTable({ connectionString, tableName });
  await PostgresEventStorageAdapter.createEventTable({ connectionString, tableName });
  const adapter = new PostgresEventStorageAdapter({ connectionString, tableName });
  try {
    const stores = makeStores(() => adapter);
    await writeAll(stores);
    return await readAll(stores);
  } finally {
    await adapter._sql.end({ timeout: 5 });
  }
};

const dynamoDBClient = () =>
  new DynamoDBClient({
    region: process.env.AWS_REGION || 'us-east-1',
    endpoint: process.env.DYNAMODB_ENDPOINT,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'testing',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'testing',
    },
  });

const recreateTable = async (client, tableName, gsiHashKey, gsiHashType) => {
  try {
    await client.send(new DeleteTableCommand({ TableName: tableName }));
  } catch (error) {
    if (error?.name !== 'ResourceNotFoundException') throw error;
  }
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'aggregateId', AttributeType: 'S' },
        { AttributeName: 'version', AttributeType: 'N' },
        { AttributeName: gsiHashKey, AttributeType: gsiHashType },
        { AttributeName: 'timestamp', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'aggregateId', KeyType: 'HASH' },
        { AttributeName: 'version', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'initialEvents',
          KeySchema: [
            { AttributeName: gsiHashKey, KeyType: 'HASH' },
            { AttributeName: 'timestamp', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    }),
  );
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`table ${tableName} did not become ACTIVE`);
};

const runDynamoDBSingleTable = async () => {
  const client = dynamoDBClient();
  const tableName = process.env.DDB_SINGLE_TABLE || 'castore-interop-events';
  await recreateTable(client, tableName, 'eventStoreId', 'S');
  const adapter = new DynamoDBSingleTableEventStorageAdapter({ tableName, dynamoDBClient: client });
  const stores = makeStores(() => adapter);
  await writeAll(stores);
  return readAll(stores);
};

const runDynamoDBLegacy = async () => {
  const client = dynamoDBClient();
  const prefix = process.env.DDB_LEGACY_TABLE_PREFIX ?? 'castore-interop-legacy-';
  const adapters = {};
  for (const storeId of [POKEMONS, TRAINERS]) {
    const tableName = `${prefix}${storeId}`;
    await recreateTable(client, tableName, 'isInitialEvent', 'N');
    adapters[storeId] = new LegacyDynamoDBEventStorageAdapter({ tableName, dynamoDBClient: client });
  }
  const stores = makeStores((storeId) => adapters[storeId]);
  await writeAll(stores);
  return readAll(stores);
};

const RUNNERS = {
  postgres: runPostgres,
  dynamodb_single_table: runDynamoDBSingleTable,
  dynamodb_legacy: runDynamoDBLegacy,
};

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

const main = async () => {
  const backends = (process.env.BACKENDS || ALL_BACKENDS.join(','))
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const backend of backends) {
    if (!RUNNERS[backend]) throw new Error(`unknown backend ${backend}`);
  }
  const output = {
    castoreVersion: '2.4.2',
    eventStoreIds: [POKEMONS, TRAINERS],
    written: [
      ...SINGLE_EVENTS.map(([eventStoreId, event]) => ({ eventStoreId, via: 'pushEvent', group: null, event })),
      ...GROUPED_EVENTS.map(([eventStoreId, event]) => ({ eventStoreId, via: 'pushEventGroup', group: 1, event })),
    ],
    notes: NOTES,
    listAggregateIdsOptionSets: LIST_OPTION_SETS,
    getEventsOptionSets: GET_EVENTS_OPTION_SETS,
  };
  let failed = false;
  for (const backend of backends) {
    log(`running ${backend}`);
    try {
      output[backend] = await RUNNERS[backend]();
    } catch (error) {
      failed = true;
      log(`${backend} failed`, error);
      output[backend] = { error: errorText(error) };
    }
  }
  process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  return failed ? 1 : 0;
};

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    log(error);
    process.exitCode = 2;
  },
);
