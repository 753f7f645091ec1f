// Request parameters for the OAuth endpoints, from a form (application/x-www-form-urlencoded,
// RFC 6749 §3.2) or a JSON object. Every value is a string that appears once.
import { InvalidRequest } from "../domain/errors.ts";

export function readParams(body: unknown): Record<string, string> {
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  if (body === undefined || body === null) return params;
  if (typeof body !== "object" || Array.isArray(body)) {
    throw new InvalidRequest("The request body must be form-encoded or a JSON object.");
  }
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(value)) throw new InvalidRequest(`The ${name} parameter must not be repeated.`);
    if (typeof value !== "string") throw new InvalidRequest(`The ${name} parameter must be a string.`);
    // NUL cannot be stored by Postgres and lone surrogates by Prisma: neither is a valid value.
    if (/\0|\p{Cs}/u.test(value)) throw new InvalidRequest(`The ${name} parameter contains invalid characters.`);
    params[name] = value;
  }
  return params;
}
