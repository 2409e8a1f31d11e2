// Conformance fixture: read event stores with Castore 2.4.2's own adapters and print ONE JSON
// document on stdout: what listAggregateIds (every page) and getEvents (every listed
// aggregate) return. It writes nothing; it reads what another writer (a migration) wrote.
//
// Environment
//   BACKEND            postgres | dynamodb_single_table | dynamodb_legacy
//   STORE_IDS          comma list of event store ids
//   PG_DSN, PG_TABLE   for postgres (PG_TABLE default "event")
//   DYNAMODB_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   for DynamoDB
//   DDB_TABLES         JSON: { "<eventStoreId>": "<table name>" } (one table for all stores
//                      in the single-table layout, one per store in the legacy layout)
//
// Output: { "<eventStoreId>": { "aggregateIds": [ {aggregateId, initialEventTimestamp} ],
//                               "events": { "<aggregateId>": [ <event detail> ] } } }

import { EventStore } from '@castore/core';
import { PostgresEventStorageAdapter } from '@castore/event-storage-adapter-postgres';
import {
  DynamoDBSingleTableEventStorageAdapter,
  LegacyDynamoDBEventStorageAdapter,
} from '@castore/event-storage-adapter-dynamodb';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

const backend = process.env.BACKEND;
const storeIds = (process.env.STORE_IDS || '').split(',').filter(Boolean);

const dynamoDBClient = () =>
  new DynamoDBClient({
    region: process.env.AWS_REGION || 'us-east-1',
    endpoint: process.env.DYNAMODB_ENDPOINT,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'testing',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'testing',
    },
  });

const adapterFor = (storeId, tables, client, pg) => {
  if (backend === 'postgres') return pg;
  if (backend === 'dynamodb_single_table') {
    return new DynamoDBSingleTableEventStorageAdapter({
      tableName: tables[storeId],
      dynamoDBClient: client,
    });
  }
  if (backend === 'dynamodb_legacy') {
    return new LegacyDynamoDBEventStorageAdapter({
      tableName: tables[storeId],
      dynamoDBClient: client,
    });
  }
  throw new Error(`unknown BACKEND ${backend}`);
};

const readStore = async (store) => {
  const aggregateIds = [];
  let pageToken;
  do {
    const page = await store.listAggregateIds({ limit: 50, pageToken });
    aggregateIds.push(...page.aggregateIds);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const events = {};
  for (const { aggregateId } of aggregateIds) {
    events[aggregateId] = (await store.getEvents(aggregateId)).events;
  }
  return { aggregateIds, events };
};

const main = async () => {
  const tables = JSON.parse(process.env.DDB_TABLES || '{}');
  const client = backend === 'postgres' ? undefined : dynamoDBClient();
  const pg =
    backend === 'postgres'
      ? new PostgresEventStorageAdapter({
          connectionString: process.env.PG_DSN,
          tableName: process.env.PG_TABLE || 'event',
        })
      : undefined;
  try {
    const output = {};
    for (const storeId of storeIds) {
      const store = new EventStore({
        eventStoreId: storeId,
        eventTypes: [],
        reducer: (aggregate) => aggregate,
        eventStorageAdapter: adapterFor(storeId, tables, client, pg),
      });
      output[storeId] = await readStore(store);
    }
    process.stdout.write(JSON.stringify(output));
  } finally {
    if (pg) await pg._sql.end({ timeout: 5 });
  }
};

main().catch((error) => {
  process.stderr.write(`${error?.stack || error}\n`);
  process.exit(1);
});
