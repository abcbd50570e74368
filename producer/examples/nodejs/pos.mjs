// A point-of-sale integration in Node.js (18+), with @aws-sdk/client-kinesis only:
//
//   npm install @aws-sdk/client-kinesis
//   STREAM=dev-salesstream-orders AWS_REGION=eu-central-1 node pos.mjs sample-event.json
//
// What salesstream needs from any producer (docs/integrators.md):
// - one JSON object per event, as producer/schema.json describes it; money in integer minor units;
// - an event id minted once, at the till, and kept for every resend of that event;
// - PartitionKey = store id; no ExplicitHashKey needed (every record counts where it lands);
// - PutRecords answers 200 with per-entry errors: resend only the failed entries, unchanged;
// - never a card number in any field: the pipeline refuses the whole event.
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { KinesisClient, PutRecordsCommand } from "@aws-sdk/client-kinesis";

const stream = process.env.STREAM ?? "dev-salesstream-orders";
const kinesis = new KinesisClient({});
const encoder = new TextEncoder();

// One sale as the till records it; the id is minted here, once.
export function orderEvent({ storeId, terminalId, currency, lines, refund = false }) {
  const total = lines.reduce((sum, line) => sum + line.quantity * line.unit_price_minor, 0);
  return {
    schema_version: 1,
    event_id: randomUUID(),
    event_type: refund ? "order_refunded" : "order_placed",
    order_id: `${storeId}-${Date.now().toString(16)}`,
    store_id: storeId,
    terminal_id: terminalId,
    occurred_at: new Date().toISOString(),
    currency,
    lines,
    total_minor: total,
  };
}

// Send up to 500 events; entries Kinesis refused are sent again as they were, with backoff.
export async function send(events, { attempts = 6 } = {}) {
  let pending = events.map((event) => ({
    PartitionKey: event.store_id,
    Data: encoder.encode(JSON.stringify(event)),
  }));
  for (let attempt = 0; pending.length && attempt < attempts; attempt++) {
    if (attempt) await new Promise((done) => setTimeout(done, Math.random() * 100 * 2 ** attempt));
    try {
      const answer = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: pending }));
      pending = pending.filter((_, index) => answer.Records[index].ErrorCode);
    } catch (error) {
      // a timeout may have stored the records: sending them again is safe (same event ids)
      console.warn(`PutRecords failed (${error.name}); retrying ${pending.length} entries`);
    }
  }
  if (pending.length) throw new Error(`${pending.length} events not sent: keep them and retry later`);
}

if (process.argv[2]) {
  const event = JSON.parse(await readFile(process.argv[2], "utf8"));
  await send([event]);
  console.log(`sent ${event.event_id}`);
}
