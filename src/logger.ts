// pino, with every place a secret could appear redacted. Request lines are written by the
// app itself (one per request, path without query string), so headers and bodies never reach
// the log in the first place; the redaction list is the second line of defence.
import pino, { type DestinationStream, type Logger } from "pino";

const SECRET_FIELDS = ["password", "refresh_token", "access_token", "client_secret", "token", "cookie", "authorization"];

export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'res.headers["set-cookie"]',
  "headers.authorization",
  "headers.cookie",
  'headers["set-cookie"]',
  "body",
  "req.body",
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "tessera" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    destination,
  );
}
