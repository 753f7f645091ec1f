// HTTP helpers shared by the key set cache (key-set.ts) and the status list cache (status-list.ts).

/** A fetch-compatible function (the global `fetch` is one). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export const globalFetch: FetchLike = (url, init) => fetch(url, init);

/** RFC 9111 §1.2.2: larger delta-seconds are taken as 2^31. */
export const MAX_DELTA_SECONDS = 2_147_483_648;

/** RFC 9111 §5.2: directive names (lower-cased) -> their arguments, unquoted. */
export function parseCacheControl(value: string | null): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  if (!value) return directives;
  const directive = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+.^_`|~0-9A-Za-z-]*)))?\s*(?:,|$)/y;
  let i = 0;
  while (i < value.length) {
    directive.lastIndex = i;
    const m = directive.exec(value);
    if (m) {
      const name = m[1]!.toLowerCase();
      const arg = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "");
      directives.set(name, [...(directives.get(name) ?? []), arg]);
      i = directive.lastIndex;
    } else {
      // An empty list element or something that is not a directive: skip to the next element.
      const comma = value.indexOf(",", i);
      i = comma === -1 ? value.length : comma + 1;
    }
  }
  return directives;
}

/** A delta-seconds argument; a repeated or malformed one counts as 0 (stale, RFC 9111 §4.2.1). */
export function deltaSeconds(args: string[] | undefined): number | undefined {
  if (args === undefined) return undefined;
  if (new Set(args).size !== 1 || !/^\d+$/.test(args[0]!)) return 0;
  return Math.min(Number(args[0]), MAX_DELTA_SECONDS);
}

export const isTimeout = (err: unknown) => err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");

/** Drops a response body we will not read, so the connection can be reused. */
export const discard = async (res: Response): Promise<void> => {
  await res.body?.cancel().catch(() => undefined);
};

/** The response body as text, or an error once it passes `maxBytes` (the rest is not read). */
export async function readLimited(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await discard(res);
    throw new RangeError(`the response is larger than ${maxBytes} bytes`);
  }
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    // Leaving the loop cancels the stream: the rest is never read.
    if (total > maxBytes) throw new RangeError(`the response is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

/** Validates a duration option (milliseconds); `fallback` when it is not given. */
export function duration(who: string, option: string, value: number | undefined, fallback: number, finite = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (finite && !Number.isSafeInteger(value))) {
    throw new TypeError(`${who}: ${option} must be a non-negative ${finite ? "integer" : "number"} of milliseconds`);
  }
  return value;
}
