// The one place where database failures are told apart: a unique violation is a domain
// outcome, an unreachable database is "retry later", anything else is a bug (500).

const UNAVAILABLE_PRISMA_CODES = new Set([
  "P1001", // can't reach database server
  "P1002", // database server timed out
  "P1008", // operations timed out
  "P1017", // server closed the connection
  "P2024", // timed out fetching a connection from the pool
]);
const UNAVAILABLE_NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "SQLITE_BUSY",
  "SQLITE_CANTOPEN",
  "SQLITE_IOERR",
]);
const UNAVAILABLE_MESSAGES =
  /ECONNREFUSED|ECONNRESET|Connection terminated|connection timeout|Query read timeout|timeout exceeded when trying to connect|Can't reach database|database is locked|DatabaseNotReachable|SocketTimeout|ConnectionClosed|TooManyConnections/i;

function* causes(err: unknown): Generator<Record<string, unknown>> {
  let cur: unknown = err;
  for (let depth = 0; depth < 6 && cur && typeof cur === "object"; depth++) {
    const rec = cur as Record<string, unknown>;
    yield rec;
    cur = rec.cause;
  }
}

export function isUnavailable(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e.name === "PrismaClientInitializationError") return true;
    const code = typeof e.code === "string" ? e.code : undefined;
    if (code && (UNAVAILABLE_PRISMA_CODES.has(code) || UNAVAILABLE_NET_CODES.has(code))) return true;
    const kind = typeof e.kind === "string" ? e.kind : undefined;
    if (kind && /DatabaseNotReachable|SocketTimeout|ConnectionClosed|TooManyConnections|TransactionAlreadyClosed/.test(kind)) {
      return true;
    }
    if (typeof e.message === "string" && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  }
  return false;
}

/** Prisma P2002: unique constraint violated. */
export function isUniqueViolation(err: unknown): boolean {
  for (const e of causes(err)) {
    if (e.code === "P2002") return true;
  }
  return false;
}
