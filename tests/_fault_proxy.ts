/**
 * A TCP proxy on loopback in front of a real server that misbehaves on chosen connections, to test
 * retries against the real thing: the bytes pass unchanged (a SigV4 signature stays valid, as the
 * Host header the client signed is the one the server sees), except on the connections a plan
 * names, which get one fault each:
 *
 * - `"slowdown"`: the request is read whole and answered by the proxy with S3's 503 SlowDown;
 * - `"reset"`: the connection is closed as soon as the request starts arriving;
 * - `"lose-response"`: the request reaches the server, which carries it out, and the connection is
 *   closed before any of the answer reaches the client (a create that landed but looks failed).
 *
 * Connections past the plan's end pass through. Private to tests/.
 *
 * @module
 */

/** What happens to one connection. */
export type Fault = "pass" | "slowdown" | "reset" | "lose-response";

/** A running proxy: its address, the faults it has dealt so far, and `close`. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** The faults dealt so far (passes excluded), in order. */
  dealt: Fault[];
  close(): Promise<void>;
}

const SLOWDOWN_BODY = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>' +
  "<Message>Please reduce your request rate.</Message></Error>";
const SLOWDOWN = new TextEncoder().encode(
  "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n" +
    `Content-Length: ${SLOWDOWN_BODY.length}\r\nConnection: close\r\n\r\n${SLOWDOWN_BODY}`,
);

/** Starts a proxy to `target` (`http://HOST:PORT`) dealing `plan[i]` to the i-th connection. */
export function startFaultProxy(target: string, plan: Fault[]): FaultProxy {
  const to = new URL(target);
  const listener: Deno.TcpListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const dealt: Fault[] = [];
  let accepted = 0;
  const closeAll = (...conns: Deno.Conn[]) => {
    for (const c of conns) {
      open.delete(c);
      try {
        c.close();
      } catch { /* already closed */ }
    }
  };
  const serve = async (client: Deno.Conn, fault: Fault) => {
    open.add(client);
    if (fault !== "pass") dealt.push(fault);
    try {
      if (fault === "reset") {
        await client.read(new Uint8Array(1));
        return closeAll(client);
      }
      if (fault === "slowdown") {
        await readRequest(client);
        await writeAll(client, SLOWDOWN);
        return closeAll(client);
      }
      const server = await Deno.connect({ hostname: to.hostname, port: Number(to.port) });
      server.setNoDelay(true);
      open.add(server);
      const up = pipe(client, server);
      if (fault === "lose-response") {
        // wait for the first byte of the answer: the server has done the request; drop it all
        await server.read(new Uint8Array(1));
        return closeAll(client, server);
      }
      await Promise.all([up, pipe(server, client)]);
      closeAll(client, server);
    } catch {
      closeAll(client);
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      serve(conn, plan[accepted++] ?? "pass");
    }
  })().catch(() => {});
  return {
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    dealt,
    async close() {
      listener.close();
      closeAll(...open);
      await loop;
    },
  };
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      await writeAll(to, buf.subarray(0, n));
    }
    await to.closeWrite();
  } catch { /* the other side went away */ }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/**
 * Reads one HTTP request, its head and the Content-Length bytes of its body, as a server would
 * before answering (answering early made the client wait for its request timeout).
 */
async function readRequest(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  let head = "";
  let bodyLeft = -1;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    if (bodyLeft >= 0) {
      bodyLeft -= n;
    } else {
      head += new TextDecoder("latin1").decode(buf.subarray(0, n));
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) continue;
      // a client that waits for "100 Continue" sends no body: a server may answer at once
      if (/\r\nexpect:\s*100-continue/i.test(head.slice(0, end))) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end));
      bodyLeft = Number(length?.[1] ?? 0) - (head.length - end - 4);
    }
    if (bodyLeft <= 0) return;
  }
}
