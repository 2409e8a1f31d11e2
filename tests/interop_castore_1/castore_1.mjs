// Conformance fixture for Castore 1.25.3's DynamoDB adapters (@castore/dam 1.25.3's era).
// Reads ONE JSON document on stdin and prints ONE on stdout (diagnostics on stderr).
//
// stdin: {
//   "mode": "write" | "read",
//   "layout": "single-table" | "legacy",
//   "tables": { "<eventStoreId>": "<table name>" },   // tables exist already
//   "stores": { "<eventStoreId>": [ <event detail>, ... ] }   // mode "write" only
// }
// Environment: DYNAMODB_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
//
// "write" pushes every event with the 1.25.3 adapter's pushEvent (in the given order), then
// reads like "read". "read" prints, per store, what the 1.25.3 adapter returns:
// { "<eventStoreId>": { "aggregateIds": [ <id string>, ... ],        // listAggregateIds, all pages
//                        "events": { "<aggregateId>": [ <event detail> ] } } }   // getEvents
// The adapters are called directly: @castore/core 1.25.3 is not on the registry, and core
// 2.4.2's EventStore calls adapters with 2.x signatures.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDbEventStorageAdapter,
  DynamoDbSingleTableEventStorageAdapter,
} from '@castore/dynamodb-event-storage-adapter';

const readStdin = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
};

const client = new DynamoDBClient({
  region: process.env.AWS_REGION || 'us-east-1',
  endpoint: process.env.DYNAMODB_ENDPOINT,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'testing',
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'testing',
  },
});

const adapterFor = (layout, tableName) =>
  layout === 'legacy'
    ? new DynamoDbEventStorageAdapter({ tableName, dynamoDbClient: client })
    : new DynamoDbSingleTableEventStorageAdapter({ tableName, dynamoDbClient: client });

const read = async (adapter, eventStoreId) => {
  const context = { eventStoreId };
  const aggregateIds = [];
  let pageToken;
  do {
    const page = await adapter.listAggregateIds(context, { limit: 2, pageToken });
    aggregateIds.push(...page.aggregateIds);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const events = {};
  for (const aggregateId of aggregateIds) {
    events[aggregateId] = (await adapter.getEvents(aggregateId, context)).events;
  }
  return { aggregateIds, events };
};

const main = async () => {
  const input = await readStdin();
  const output = {};
  for (const [eventStoreId, tableName] of Object.entries(input.tables)) {
    const adapter = adapterFor(input.layout, tableName);
    if (input.mode === 'write') {
      for (const event of input.stores[eventStoreId] || []) {
        await adapter.pushEvent(event, { eventStoreId });
      }
    }
    output[eventStoreId] = await read(adapter, eventStoreId);
  }
  process.stdout.write(JSON.stringify(output));
};

main().catch((error) => {
  process.stderr.write(`${error?.stack || error}\n`);
  process.exit(1);
});
