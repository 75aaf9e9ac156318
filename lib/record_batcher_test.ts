import { equal } from "node:assert/strict";
import type { ReadonlyBackend } from "../backends/backend.ts";
import type { CodecPool } from "./codec_pool.ts";
import { RecordBatcher } from "./record_batcher.ts";

Deno.test("restore reads ahead 4 MiB per storage connection, from 8 to 32 MiB", () => {
  const ahead = (connections: number) => {
    const backend = { capabilities: { connections } } as unknown as ReadonlyBackend;
    return new RecordBatcher({ backend }, {} as CodecPool, { maxBytes: 8 << 20 }).readAheadBytes;
  };
  equal(ahead(1), 8 << 20);
  equal(ahead(2), 8 << 20); // a local repository
  equal(ahead(4), 16 << 20);
  equal(ahead(8), 32 << 20); // S3 and vger-server by default
  equal(ahead(32), 32 << 20);
});
