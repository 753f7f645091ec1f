// Where a browser says a request comes from. A page on another site can make its visitor's
// browser send a form or a JSON-less POST without any CORS preflight; it cannot read the answer,
// but the request still does its work (counts a password guess, logs in). Browsers mark such
// requests: Origin names the page's origin, and Fetch Metadata's Sec-Fetch-Site says
// "cross-site" even where Origin is left out. Clients that are not browsers send neither.

/**
 * Why a request from a browser on another origin is refused, or null when it may go on. With
 * `webPagesOnly`, only web pages are refused: an Origin of another scheme than http(s) (a browser
 * extension's, an app's web view: chrome-extension://, capacitor://) is not a page a user may
 * have been led to, and cannot be listed in ALLOWED_ORIGINS; "null" (a sandboxed frame, a data:
 * page) can be a page's, and is refused.
 */
export function crossOriginRefusal(
  headers: { origin?: string | undefined; "sec-fetch-site"?: string | string[] | undefined },
  allowed: ReadonlySet<string>,
  webPagesOnly = false,
): string | null {
  const origin = headers.origin;
  if (origin !== undefined && !allowed.has(origin) && !(webPagesOnly && notAWebPage(origin))) return "Requests from this origin are not allowed.";
  if (origin === undefined && headers["sec-fetch-site"] === "cross-site") return "Cross-site requests are not allowed.";
  return null;
}

const notAWebPage = (origin: string) => origin !== "null" && !/^https?:\/\//i.test(origin);
