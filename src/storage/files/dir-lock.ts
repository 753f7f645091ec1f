// The lock on KEYS_DIR that key rotations and `keys seal` hold (withDirLock).
//
// Design: the lock is an exclusive SQLite transaction (BEGIN EXCLUSIVE, i.e. a POSIX fcntl lock)
// on KEYS_DIR/.lock.db. The kernel drops that lock when its holder exits, however it exits
// (SIGKILL, OOM kill, a crash), so the lock never goes stale and is never "broken":
// there is no moment at which two processes both believe they hold it, unlike a lock file that is
// deleted when it looks old (two processes that both saw it old could each delete and recreate
// it, the second deleting the first's fresh lock). A holder that is alive but slow (stopped,
// swapping) keeps the lock, as it must. better-sqlite3 is already a dependency (the SQLite
// database); with `timeout: 0` a busy lock is reported at once and retried on a timer, so the
// event loop never blocks. Nothing is ever written to .lock.db (journal_mode=MEMORY: no journal
// file either); it stays, empty and 0600, and must not be deleted while a process may hold it.
// fcntl locks belong to a process, and closing any descriptor of the file drops them, so this
// module never opens .lock.db itself (it is created by link, checked by lstat), and transactions
// within one process queue in memory (localTurn) before one of them takes the OS lock.
//
// The old lock file, .lock, is still written while the lock is held: an older Tessera (a cron job
// during an upgrade) only knows that protocol, and operators see who holds the lock. A .lock found
// by a process that holds the OS lock is either from a holder that died (ours: tagged, removed at
// once) or from an older version (untagged: honoured until 30 s old, as those versions did, and
// kept fresh by a heartbeat while we hold it so that they never take ours for stale).
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import fs, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import Database from "better-sqlite3";
import { KeyStoreError } from "../key-store-error.ts";
import { isSqliteBusy, lockExclusive, unlockAndClose } from "../sqlite-lock.ts";
import { writeNewFileAtomic } from "./atomic-write.ts";
import { errCode } from "./errno.ts";
import { checkPrivateStat, inDir, openKeysDir, type Where } from "./private-files.ts";

const LOCK_STALE_MS = 30_000;
const LOCK_DB = ".lock.db";
const LOCK_MARKER = ".lock";
const MARKER_TAG = "tessera-lock v2";
const HEARTBEAT_MS = 5_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** FIFO turns per KEYS_DIR within this process. */
const localTails = new Map<string, Promise<void>>();

/** Waits until this process's earlier holders of `key` are done; null when the deadline passes first. */
async function localTurn(key: string, deadline: number): Promise<(() => void) | null> {
  const prev = localTails.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = prev.then(() => mine);
  localTails.set(key, tail);
  const leave = () => {
    release();
    void tail.then(() => {
      if (localTails.get(key) === tail) localTails.delete(key);
    });
  };
  let timer: NodeJS.Timeout | undefined;
  const ours = await Promise.race([
    prev.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now())))),
  ]);
  clearTimeout(timer);
  if (ours) return leave;
  leave(); // our place in the queue passes straight on to the next waiter
  return null;
}


/** The pid in a .lock written by this version, if it is one (nothing else of it is ever shown). */
async function markerPid(marker: string): Promise<number | null> {
  const text = await readHead(marker);
  const m = text === null ? null : /^tessera-lock v2 pid=(\d{1,10}) /.exec(text);
  return m ? Number(m[1]) : null;
}

async function readHead(file: string): Promise<string | null> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(128);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await fh.close();
  }
}

function heldError(lockFile: string, timeoutMs: number, holder: string): KeyStoreError {
  return new KeyStoreError(
    `${lockFile} is held by ${holder}: a key rotation or \`keys seal\` is running; gave up after ${timeoutMs} ms. The operating system releases this lock when its holder exits, so it never goes stale: wait and retry, and do not delete ${LOCK_DB}`,
  );
}

/** Takes the OS lock on KEYS_DIR/.lock.db (see above), or throws at the deadline. */
async function acquireOsLock(dir: Where, deadline: number, timeoutMs: number): Promise<Database.Database> {
  const file = inDir(dir, LOCK_DB);
  let st = await fs.lstat(file.real).catch((err: unknown) => {
    if (errCode(err) === "ENOENT") return null;
    throw err;
  });
  if (!st) {
    try {
      await writeNewFileAtomic(file.real, ""); // an empty file is an empty SQLite database, created 0600
    } catch (err) {
      if (errCode(err) !== "EEXIST") throw err;
    }
    st = await fs.lstat(file.real);
  }
  checkPrivateStat(st, file.shown, "lock file");
  let db: Database.Database;
  try {
    db = new Database(file.real, { timeout: 0, fileMustExist: true });
  } catch (err) {
    throw new KeyStoreError(`${file.shown} cannot be opened as a lock (${errCode(err) ?? "error"}); remove it when no Tessera process is running`);
  }
  try {
    let held: boolean;
    try {
      held = await lockExclusive(db, deadline, () => 10 + Math.random() * 20);
    } catch (err) {
      throw new KeyStoreError(`${file.shown} cannot be used as a lock (${errCode(err) ?? "error"}); remove it when no Tessera process is running`);
    }
    if (!held) {
      const pid = await markerPid(inDir(dir, LOCK_MARKER).real);
      throw heldError(inDir(dir, LOCK_MARKER).shown, timeoutMs, `another process${pid ? ` (pid ${pid})` : ""}`);
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Publishes KEYS_DIR/.lock for the time the OS lock is held (see above). Called only while
 * holding the OS lock, so no other process of this version is in here at the same time.
 */
async function takeMarker(dir: Where, deadline: number, timeoutMs: number): Promise<() => Promise<void>> {
  const marker = inDir(dir, LOCK_MARKER);
  const tmp = path.join(dir.real, `.tmp-${randomBytes(8).toString("hex")}`);
  // Linked into place complete (never an empty .lock); the handle stays open for the heartbeat.
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(`${MARKER_TAG} pid=${process.pid} since=${new Date().toISOString()}\n`);
    for (;;) {
      try {
        await fs.link(tmp, marker.real);
        break;
      } catch (err) {
        if (errCode(err) !== "EEXIST") throw err;
      }
      const st = await fs.lstat(marker.real).catch(() => null);
      if (!st) continue; // removed meanwhile: try again
      if (!st.isFile()) throw new KeyStoreError(`${marker.shown} is not a regular file; remove it`);
      const head = await readHead(marker.real);
      const ours = head?.startsWith(`${MARKER_TAG} `) ?? false;
      // Ours: its writer released the OS lock without removing it, i.e. it died. Untagged: an older
      // version's lock, abandoned once older than those versions' own stale age.
      if (ours || Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        const again = await fs.lstat(marker.real).catch(() => null);
        // Remove what was judged, not a fresh lock an older version put there since.
        if (again && again.ino === st.ino && again.mtimeMs === st.mtimeMs) {
          await fs.unlink(marker.real).catch((err: unknown) => {
            if (errCode(err) !== "ENOENT") throw err;
          });
        }
        continue;
      }
      if (Date.now() >= deadline) {
        throw new KeyStoreError(
          `${marker.shown} is held by another process: a lock written ${Math.round((Date.now() - st.mtimeMs) / 1000)} s ago by an older Tessera version; gave up after ${timeoutMs} ms. It is taken over once older than ${LOCK_STALE_MS / 1000} s; remove it if no rotation is running`,
        );
      }
      await sleep(20 + Math.random() * 30);
    }
  } catch (err) {
    await fh.close();
    throw err;
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
  const ino = (await fh.stat()).ino;
  const heartbeat = setInterval(() => {
    const now = new Date();
    fh.utimes(now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return async () => {
    clearInterval(heartbeat);
    try {
      const st = await fs.lstat(marker.real).catch(() => null);
      if (st && st.ino === ino) await fs.unlink(marker.real).catch(() => undefined);
    } finally {
      await fh.close();
    }
  };
}

/**
 * Runs `fn` holding KEYS_DIR's lock: exclusive across processes (an OS lock that dies with its
 * holder, see above) and within this process (FIFO). `fn` gets the resolved, checked KEYS_DIR.
 * Throws a KeyStoreError when the lock cannot be had within `timeoutMs`.
 */
export async function withDirLock<T>(dir: string, fn: (realDir: string) => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const where = await openKeysDir(dir);
  const deadline = Date.now() + timeoutMs;
  const leave = await localTurn(where.real, deadline);
  if (!leave) throw heldError(inDir(where, LOCK_MARKER).shown, timeoutMs, "another transaction in this process");
  try {
    const db = await acquireOsLock(where, deadline, timeoutMs);
    try {
      const dropMarker = await takeMarker(where, deadline, timeoutMs);
      try {
        return await fn(where.real);
      } finally {
        await dropMarker();
      }
    } finally {
      unlockAndClose(db);
    }
  } finally {
    leave();
  }
}
