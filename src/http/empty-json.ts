// JSON bodies for the OAuth, browser and admin endpoints:
// - Bodiless POSTs (the cookie endpoints, the admin API's disable/enable/rotate) may still say
//   Content-Type: application/json (the CSRF check wants it): an empty JSON body is {}, not a 400.
// - A member repeated at the top level is a 400, as a repeated form parameter is (RFC 6749 §3.2:
//   parameters MUST NOT be included more than once). JSON.parse keeps the last of them, so
//   {"password":"x","password":"y"} would otherwise read as one password, a different one than a
//   proxy or WAF that keeps the first may have looked at.
import type { FastifyInstance } from "fastify";
import { InvalidRequest } from "../domain/errors.ts";

export function acceptEmptyJson(app: FastifyInstance): void {
  const defaultJson = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, {});
    return defaultJson(request, text, (err, parsed) => {
      if (err) return done(err);
      const repeated = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? repeatedMember(text) : null;
      if (repeated !== null) return done(new InvalidRequest(`The ${repeated.slice(0, 100)} parameter must not be repeated.`));
      return done(null, parsed);
    });
  });
}

/**
 * The first member name of the top-level JSON object `text` that appears twice (compared as
 * decoded, so "pass\u0077ord" is "password"), or null. `text` must be valid JSON.
 */
export function repeatedMember(text: string): string | null {
  // The JSON parser skips a byte order mark; so does this.
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const space = () => {
    while (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r") i++;
  };
  /** at a string's opening quote: moves past its closing one and returns the string's text */
  const string = () => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    return text.slice(start, ++i);
  };
  /** moves to the ',' or '}' that ends the current member's value */
  const value = () => {
    for (let depth = 0; i < text.length; ) {
      const c = text[i];
      if (c === '"') {
        string();
        continue;
      }
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        if (depth === 0) return;
        depth--;
      } else if (c === "," && depth === 0) return;
      i++;
    }
  };
  space();
  if (text[i] !== "{") return null;
  i++;
  const seen = new Set<string>();
  for (;;) {
    space();
    if (text[i] !== '"') return null; // the "}" of {}
    const name = JSON.parse(string()) as string;
    if (seen.has(name)) return name;
    seen.add(name);
    space();
    i++; // ':'
    value();
    if (text[i] !== ",") return null; // the closing "}"
    i++;
  }
}
