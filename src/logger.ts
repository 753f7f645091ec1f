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
/** First non-blank line: Prisma messages start with a newline. */
const firstLine = (text: string): string => (text.split("\n").find((l) => l.trim() !== "") ?? "").trim().slice(0, 300);

export function serializeError(err: unknown): Record<string, unknown> {
  const code = err && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  const codeField = typeof code === "string" || typeof code === "number" ? { code } : {};
  if (!(err instanceof Error)) {
    // Call sites that log { err: { message, code } } (already reduced) keep their message.
    const message = err && typeof err === "object" ? (err as { message?: unknown }).message : err;
    return { ...codeField, message: firstLine(String(message)) };
  }
  const frames = (err.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l));
  return { type: err.name, ...codeField, message: firstLine(err.message), stack: frames.slice(0, 12).join("\n") };
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
