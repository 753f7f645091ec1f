// Public documents served from prepared bytes (the JWKS, the token status lists): built once when
// their content changes, never per request, with a strong ETag computed from the bytes.
import { createHash } from "node:crypto";
import { constants, gzipSync } from "node:zlib";

export interface Representation {
  body: Buffer;
  /** strong entity tag (RFC 9110 §8.8.3) of exactly these bytes */
  etag: string;
}

export interface PublishedDocument extends Representation {
  /** the same document gzip-encoded (RFC 9110 §8.4.1.3), for clients that accept it */
  gzip?: Representation;
}

const representation = (body: Buffer): Representation => ({
  body,
  etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
});

/** `body` prepared for serving; with `gzip`, also its gzip encoding (each with its own ETag). */
export function publish(body: Buffer, opts: { gzip?: boolean } = {}): PublishedDocument {
  return opts.gzip ? { ...representation(body), gzip: representation(gzipSync(body, { level: constants.Z_BEST_COMPRESSION })) } : representation(body);
}
