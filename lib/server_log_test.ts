import { equal } from "node:assert/strict";
import { formatEvent, formatRequestLog, maskSecret } from "./server_log.ts";

const entry = {
  time: new Date("2026-12-04T17:00:00.000Z"),
  remote: "10.0.0.1",
  method: "PUT",
  path: "/laptop/packs/ab/ab01\x1b[2J",
  status: 403,
  bytesIn: 1234,
  durationMs: 12.345,
  error: 'Repository "laptop" is append-only',
};

Deno.test("request logs: one line, pretty or JSON, control characters escaped", () => {
  equal(
    formatRequestLog(entry, "pretty"),
    "2026-12-04T17:00:00.000Z 10.0.0.1 PUT /laptop/packs/ab/ab01\\x1b[2J 403 in=1234 12.3ms " +
      'error="Repository \\"laptop\\" is append-only"',
  );
  const json = JSON.parse(formatRequestLog(entry, "json"));
  equal(json.path, entry.path);
  equal(json.status, 403);
  equal(json.bytes_in, 1234);
  equal(json.duration_ms, 12.3);
  equal(formatRequestLog({ ...entry, error: undefined }, "json").includes("error"), false);
  equal(formatRequestLog(entry, "json").includes("\n"), false);
});

Deno.test("request logs: a token that a client put in a path is masked", () => {
  const line = formatRequestLog({ ...entry, path: "/r/s3cr3t-token/x" }, "pretty");
  equal(maskSecret(line, "s3cr3t-token").includes("s3cr3t-token"), false);
  equal(maskSecret(line, "s3cr3t-token").includes("/r/***/x"), true);
  equal(JSON.parse(formatEvent("json", "lock_expired", "r/locks/x")).detail, "r/locks/x");
});
