// What the modules that bypass Prisma and talk to the driver directly (session-queries.ts,
// user-queries.ts, login-throttle.ts) share: how each database stores Prisma's DateTime, and
// SQLite's retry while another connection holds the write lock.
import { isSqliteBusy } from "../sqlite-lock.ts";

/** A timestamp as read back from either database (ISO text on SQLite, epoch ms on Postgres). */
export const date = (v: string | number): Date => new Date(typeof v === "string" && /^\d+(\.\d+)?$/.test(v) ? Number(v) : v);

// ---- SQLite ----

/** The text format Prisma writes for DateTime in SQLite; both must compare as strings. */
export const sqliteTimestamp = (d: Date): string => d.toISOString().replace("Z", "+00:00");


export async function retryWhileBusy<T>(op: () => T): Promise<T> {
  const deadline = Date.now() + 5000;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    try {
      return op();
    } catch (err) {
      // Another connection holds the write lock: yield to the event loop (it may be Prisma's
      // own transaction in this process) and try again, up to the same 5 s busy timeout.
      if (!isSqliteBusy(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

// ---- Postgres ----

/** Prisma stores UTC wall time in timestamp(3) (no zone): read it back as epoch ms. */
export const pgEpochMs = (col: string) => `(EXTRACT(EPOCH FROM ${col}) * 1000)::float8`;
/** ...and write UTC wall time the same way (an ISO string without offset). */
export const pgTimestamp = (d: Date): string => d.toISOString().replace("Z", "");
