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

/**
 * Errors are logged by type, code, first message line and stack frames only. Database client
 * errors can quote the arguments of the failed call on later message lines (hashes, emails);
 * those never reach the log.
 */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err).split("\n")[0] };
  const code = (err as { code?: unknown }).code;
  const frames = (err.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l));
  return {
    type: err.name,
    ...(typeof code === "string" || typeof code === "number" ? { code } : {}),
    message: err.message.split("\n")[0]?.slice(0, 300),
    stack: frames.slice(0, 12).join("\n"),
  };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "tessera" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      serializers: { err: serializeError },
    },
    destination,
  );
}
