/**
 * vger-server's quota as a real process under `deno serve --parallel` (reservations are shared
 * on disk by the workers): concurrent uploads never take a repository over its quota, an upload
 * over it is 413 before any byte is stored, a replaced object counts its new size only, and a
 * failed upload gives its reservation back.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { rawRequest, startServer, statusOf, type TestServer } from "./_server.ts";

/** Sends a PUT over its own connection: the head and half the body, a pause, then the rest. */
async function slowPut(
  server: TestServer,
  path: string,
  size: number,
  pauseMs: number,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const head = `PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
      `Content-Length: ${size}\r\nConnection: close\r\n\r\n`;
    const body = new Uint8Array(size).fill(7);
    const write = async (b: Uint8Array) => {
      for (let at = 0; at < b.length;) at += await conn.write(b.subarray(at));
    };
    await write(new TextEncoder().encode(head));
    await write(body.subarray(0, size >> 1)).catch(() => {});
    await new Promise((r) => setTimeout(r, pauseMs));
    await write(body.subarray(size >> 1)).catch(() => {});
    let text = "";
    const buf = new Uint8Array(4096);
    const deadline = Date.now() + 15_000;
    while (!text.includes("\r\n\r\n") && Date.now() < deadline) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return statusOf(text);
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}

async function leftovers(dataDir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (
        e.name.startsWith(".tmp-") || path.includes("/reservations/") || path.includes("/mutex/")
      ) {
        found.push(path.slice(dataDir.length));
      }
    }
  };
  await walk(dataDir);
  return found;
}

Deno.test("quota under deno serve --parallel: concurrent uploads stop exactly at the quota, 413 before any byte", async () => {
  const server = await startServer("serve", {
    parallel: true,
    toml: "quota_bytes = 100000\nbody_timeout_seconds = 1\n",
  });
  try {
    const config = await server.fetch("/r/config", {
      method: "PUT",
      body: "0123456789",
      headers: { "If-None-Match": "*" },
    });
    equal(config.status, 201);
    // 8 uploads of 30,000 bytes at once: 3 fit (90,010 of 100,000), 5 are refused
    const statuses = await Promise.all(
      Array.from({ length: 8 }, (_, i) => slowPut(server, `/r/data/${i}`, 30_000, 300)),
    );
    deepStrictEqual([...statuses].sort(), [201, 201, 201, 413, 413, 413, 413, 413]);
    const won = statuses.flatMap((s, i) => (s === 201 ? [i] : []));
    const info = await (await server.fetch("/r")).json();
    equal(info.quota_bytes, 100_000);
    equal(info.used_bytes, 90_010);
    equal(info.objects, 4);
    const refusal = await server.fetch("/r/data/more", {
      method: "PUT",
      body: new Uint8Array(10_000),
    });
    equal(refusal.status, 413);
    ok(
      (await refusal.json()).error.startsWith('Repository "r" is over its quota with "data/more"'),
    );

    // a 10 GB claim: 413 at once, nothing read or stored
    const huge = await rawRequest(
      server.port,
      `PUT /r/data/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
        `Content-Length: 10000000000\r\n\r\n`,
      { body: new Uint8Array(1000), timeoutMs: 5000 },
    );
    equal(statusOf(huge), 413, huge);

    // a replace counts its new size only: 39,990 over 30,000 fits (90,010 - 30,000 + 39,990 =
    // 100,000), then 30,001 over 30,000 does not
    const replace = await server.fetch(`/r/data/${won[0]}`, {
      method: "PUT",
      body: new Uint8Array(39_990),
    });
    equal(replace.status, 200, await replace.text());
    const over = await server.fetch(`/r/data/${won[1]}`, {
      method: "PUT",
      body: new Uint8Array(30_001),
    });
    equal(over.status, 413);
    await over.body?.cancel();

    // a stalled upload gives its reservation back: after its 408, the bytes are free again
    equal((await server.fetch(`/r/data/${won[0]}`, { method: "DELETE" })).status, 204);
    const stalled = await rawRequest(
      server.port,
      `PUT /r/data/stalled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
        `Content-Length: 39000\r\n\r\n`,
      { body: new Uint8Array(100), timeoutMs: 8000 },
    );
    equal(statusOf(stalled), 408, stalled);
    const after = await server.fetch("/r/data/again", {
      method: "PUT",
      body: new Uint8Array(39_000),
    });
    equal(after.status, 201);
    equal((await (await server.fetch("/r")).json()).used_bytes, 99_010);
    // nothing half-written, no reservation or mutex left behind
    deepStrictEqual(await leftovers(server.dataDir), []);
  } finally {
    await server.stop();
  }
});

Deno.test("quota: kept versions of manifest and index count in append-only mode", async () => {
  const server = await startServer("run", { toml: "quota_bytes = 10000\nappend_only = true\n" });
  try {
    const put = async (key: string, size: number, create = false) => {
      const res = await server.fetch(`/r/${key}`, {
        method: "PUT",
        body: new Uint8Array(size),
        headers: create ? { "If-None-Match": "*" } : {},
      });
      await res.body?.cancel();
      return res.status;
    };
    equal(await put("config", 100, true), 201);
    equal(await put("manifest", 2000, true), 201);
    equal(await put("manifest", 2000), 200); // keeps the old 2,000 and the new 2,000
    const info = await (await server.fetch("/r")).json();
    equal(info.used_bytes, 100 + 2000 + 2000 + 2000);
    // 6,100 used: a replace reserves twice its size (kept version and object), 2 x 2,000 > 3,900
    equal(await put("manifest", 2000), 413);
    equal(await put("manifest", 1900), 200);
  } finally {
    await server.stop();
  }
});
