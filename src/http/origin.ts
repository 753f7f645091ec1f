// Where a browser says a request comes from. A page on another site can make its visitor's
// browser send a form or a JSON-less POST without any CORS preflight; it cannot read the answer,
// but the request still does its work (counts a password guess, logs in). Browsers mark such
// requests: Origin names the page's origin, and Fetch Metadata's Sec-Fetch-Site says
// "cross-site" even where Origin is left out. Clients that are not browsers send neither.

/** Why a request from a browser on another origin is refused, or null when it may go on. */
export function crossOriginRefusal(headers: { origin?: string | undefined; "sec-fetch-site"?: string | string[] | undefined }, allowed: ReadonlySet<string>): string | null {
  const origin = headers.origin;
  if (origin !== undefined && !allowed.has(origin)) return "Requests from this origin are not allowed.";
  if (origin === undefined && headers["sec-fetch-site"] === "cross-site") return "Cross-site requests are not allowed.";
  return null;
}
