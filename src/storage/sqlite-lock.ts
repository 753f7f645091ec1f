// An exclusive lock on a SQLite file (BEGIN EXCLUSIVE: a POSIX fcntl lock the kernel releases
// when its holder exits, however it exits, so it never goes stale), taken without blocking the
// event loop: the handle is opened with `timeout: 0` and a busy lock is retried on a timer.
// Used for the key directory's lock (files/dir-lock.ts) and the SQLite migration lock
// (prisma/migrate.ts). Nothing is ever written to the lock file, and journal_mode=MEMORY keeps a
// journal file from appearing next to it.
import type Database from "better-sqlite3";

/** SQLite's "another connection holds the lock" (SQLITE_BUSY, SQLITE_LOCKED and their extended codes). */
export function isSqliteBusy(err: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED)/.test(String((err as { code?: unknown } | null)?.code ?? ""));
}

/**
 * BEGIN EXCLUSIVE on `db`, retried every `retryMs()` while another process holds the lock.
 * True once held; false when `deadline` (epoch ms) passed first. Any other error is thrown.
 */
export async function lockExclusive(db: Database.Database, deadline: number, retryMs: () => number): Promise<boolean> {
  for (let journalSet = false; ; ) {
    try {
      // Like BEGIN, the pragma is busy while another process holds the lock.
      if (!journalSet) db.pragma("journal_mode = MEMORY");
      journalSet = true;
      db.exec("BEGIN EXCLUSIVE");
      return true;
    } catch (err) {
      if (!isSqliteBusy(err)) throw err;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, retryMs()));
    }
  }
}

/** Drops the lock: rollback, and closing the handle drops it even if the rollback failed. */
export function unlockAndClose(db: Database.Database): void {
  try {
    db.exec("ROLLBACK");
  } finally {
    db.close();
  }
}
