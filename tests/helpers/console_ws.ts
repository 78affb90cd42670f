/**
 * Websocket clients of the console tests: the status of an upgrade request
 * (raw HTTP over TCP, to see a refusal's status), a websocket with headers
 * (Deno's `WebSocket` takes them), and an RFB client that reads a VNC
 * server's banner and first framebuffer update over it.
 */

/** The HTTP status of a websocket upgrade request to `path`. */
export async function upgradeStatus(
  origin: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const url = new URL(path, origin);
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  try {
    const lines = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      `Origin: ${url.origin}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n")));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    const m = head.match(/^HTTP\/1\.1 (\d{3})/);
    if (!m) throw new Error(`Not an HTTP answer: ${head}`);
    return Number(m[1]);
  } finally {
    conn.close();
  }
}

/** A websocket's received bytes, read as a stream. */
export class WsReader {
  #buf = new Uint8Array(0);
  #waiters: (() => void)[] = [];
  closed: Promise<CloseEvent>;

  constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      const data = new Uint8Array(ev.data as ArrayBuffer);
      const next = new Uint8Array(this.#buf.length + data.length);
      next.set(this.#buf);
      next.set(data, this.#buf.length);
      this.#buf = next;
      for (const w of this.#waiters.splice(0)) w();
    };
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (ev) => {
        resolve(ev);
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  /** The next `n` bytes; throws when the socket closes first or on timeout. */
  async read(n: number, timeoutMs = 60_000): Promise<Uint8Array> {
    const end = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (this.ws.readyState >= WebSocket.CLOSING) {
        throw new Error("the websocket closed");
      }
      if (Date.now() > end) throw new Error(`timed out reading ${n} bytes`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 200);
      });
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
}

/** Opens a websocket with `headers`; resolves once it is open. */
export async function openWs(
  url: string,
  headers: Record<string, string> = {},
): Promise<WsReader> {
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  const reader = new WsReader(ws);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (ev) => reject(new Error(`websocket error: ${ev.type}`));
  });
  return reader;
}

/** What an RFB handshake saw. */
export interface RfbResult {
  banner: string;
  width: number;
  height: number;
  name: string;
  /** Rectangles of the first framebuffer update. */
  rects: number;
}

/**
 * Speaks RFB 3.8 with security "None" over `r` up to the first
 * framebuffer update (message type 0) of the whole screen.
 */
export async function rfbHandshake(r: WsReader): Promise<RfbResult> {
  const send = (bytes: number[]) => r.ws.send(new Uint8Array(bytes));
  const banner = new TextDecoder().decode(await r.read(12));
  r.ws.send(new TextEncoder().encode("RFB 003.008\n"));
  const [count] = await r.read(1);
  const types = [...await r.read(count)];
  if (!types.includes(1)) throw new Error(`no security None in ${types}`);
  send([1]);
  const result = new DataView((await r.read(4)).buffer).getUint32(0);
  if (result !== 0) throw new Error(`security result ${result}`);
  send([1]); // ClientInit, shared
  const init = new DataView((await r.read(24)).buffer);
  const width = init.getUint16(0), height = init.getUint16(2);
  const name = new TextDecoder().decode(await r.read(init.getUint32(20)));
  // FramebufferUpdateRequest, not incremental, the whole screen.
  send([3, 0, 0, 0, 0, 0, width >> 8, width & 255, height >> 8, height & 255]);
  const [type] = await r.read(1);
  if (type !== 0) throw new Error(`message type ${type}, not an update`);
  const head = new DataView((await r.read(3)).buffer);
  return { banner, width, height, name, rects: head.getUint16(1) };
}
