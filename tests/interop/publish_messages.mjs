// Conformance fixture: publish messages through Castore 2.4.2's own message adapters,
// one message at a time (the adapters' single-message path,
// adapter.publishMessage(message, { replay })), so the Python tests can compare what
// Castore puts on the wire with what the provider puts there.
//
// stdin: a JSON array of
//   { "message": <castore message>, "replay": true | false }
// where <castore message> is either an aggregate-exists message
//   { "eventStoreId": S, "aggregateId": S, ... }      (e.g. "initialEventTimestamp")
// or a notification message
//   { "eventStoreId": S, "event": <event detail> }
// Messages are published in array order; each one goes to every configured target
// below, in the order: SQS standard, SQS FIFO, EventBridge.
//
// Environment (a target whose variable is unset or empty is skipped; at least one
// target is required):
//   SQS_QUEUE_URL        standard queue -> SQSMessageQueueAdapter({ queueUrl, sqsClient })
//   SQS_FIFO_QUEUE_URL   FIFO queue     -> SQSMessageQueueAdapter({ queueUrl, sqsClient, fifo: true })
//   EVENT_BUS_NAME       bus            -> EventBridgeMessageBusAdapter({ eventBusName, eventBridgeClient })
//   SQS_ENDPOINT         SQS endpoint (e.g. a moto server http://127.0.0.1:5055)
//   EVENTBRIDGE_ENDPOINT EventBridge endpoint
//   AWS_ENDPOINT_URL     fallback for both endpoints
//   AWS_REGION           default us-east-1; credentials default to fake "testing" keys
//
// stdout: exactly {"ok": true} on success. On failure: {"ok": false, "error": S} and
// exit code 1. Per-target counts are logged on stderr.

import { SQSClient } from '@aws-sdk/client-sqs';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSMessageQueueAdapter } from '@castore/message-queue-adapter-sqs';
import { EventBridgeMessageBusAdapter } from '@castore/message-bus-adapter-event-bridge';

const log = (...args) => console.error('[publish_messages]', ...args);

const readStdin = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf-8');
};

const clientConfig = (endpoint) => ({
  region: process.env.AWS_REGION || 'us-east-1',
  ...(endpoint ? { endpoint } : {}),
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'testing',
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'testing',
  },
});

const buildTargets = () => {
  const targets = [];
  const sqsEndpoint = process.env.SQS_ENDPOINT || process.env.AWS_ENDPOINT_URL;
  const eventBridgeEndpoint = process.env.EVENTBRIDGE_ENDPOINT || process.env.AWS_ENDPOINT_URL;
  let sqsClient;
  const getSqsClient = () => {
    sqsClient ??= new SQSClient(clientConfig(sqsEndpoint));
    return sqsClient;
  };
  if (process.env.SQS_QUEUE_URL) {
    targets.push({
      name: 'sqs',
      adapter: new SQSMessageQueueAdapter({
        queueUrl: process.env.SQS_QUEUE_URL,
        sqsClient: getSqsClient(),
      }),
    });
  }
  if (process.env.SQS_FIFO_QUEUE_URL) {
    targets.push({
      name: 'sqs_fifo',
      adapter: new SQSMessageQueueAdapter({
        queueUrl: process.env.SQS_FIFO_QUEUE_URL,
        sqsClient: getSqsClient(),
        fifo: true,
      }),
    });
  }
  if (process.env.EVENT_BUS_NAME) {
    targets.push({
      name: 'eventbridge',
      adapter: new EventBridgeMessageBusAdapter({
        eventBusName: process.env.EVENT_BUS_NAME,
        eventBridgeClient: new EventBridgeClient(clientConfig(eventBridgeEndpoint)),
      }),
    });
  }
  return targets;
};

const main = async () => {
  const input = JSON.parse(await readStdin());
  if (!Array.isArray(input)) throw new Error('stdin must be a JSON array');
  const targets = buildTargets();
  if (targets.length === 0) {
    throw new Error('set at least one of SQS_QUEUE_URL, SQS_FIFO_QUEUE_URL, EVENT_BUS_NAME');
  }
  const counts = Object.fromEntries(targets.map(({ name }) => [name, 0]));
  for (const [index, item] of input.entries()) {
    if (item === null || typeof item !== 'object' || typeof item.message !== 'object') {
      throw new Error(`item ${index}: expected {"message": {...}, "replay": bool}`);
    }
    const replay = item.replay === true;
    for (const { name, adapter } of targets) {
      const response = await adapter.publishMessage(item.message, { replay });
      // PutEvents reports per-entry failures in the response instead of throwing.
      if (name === 'eventbridge' && (response?.FailedEntryCount ?? 0) > 0) {
        throw new Error(`item ${index}: EventBridge rejected the entry: ${JSON.stringify(response.Entries)}`);
      }
      counts[name] += 1;
    }
  }
  log('published', JSON.stringify(counts));
};

main().then(
  () => {
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  },
  (error) => {
    log(error);
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: `${error?.name ?? 'Error'}: ${error?.message ?? String(error)}` })}\n`,
    );
    process.exitCode = 1;
  },
);
