// File key store (KEY_STORE=file, the default): one JSON file per key in KEYS_DIR, mode 0600,
// written atomically (temp file, fsync, then link for new files / rename for updates, then an
// fsync of the directory so the new name survives a power cut). With KEYS_ENCRYPTION_KEY set,
// private keys and the server secret are sealed (AES-256-GCM, kid as AAD).
//
// Whoever can write KEYS_DIR or a key file can make the issuer sign with a key they know, so the
// store refuses to work (and the server to start) with a message saying what to fix when:
// - KEYS_DIR is writable by group or others, or owned by someone else than this user or root;
// - a key, secret or lock file is a symlink, not a regular file, not owned by this user, or
//   readable/writable by group or others;
// - KEYS_ENCRYPTION_KEY is set and a private key or the secret is in plaintext (`keys seal`
//   seals them; see sealAll).
// Error messages name files, modes and owners, never anything read from a file: a key file may
// hold a private key, and these messages end up in logs.
import { randomBytes } from "node:crypto";
import { constants as fsConstants, type Stats } from "node:fs";
import fs, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import Database from "better-sqlite3";
import type { JWK } from "jose";
import type { SigningAlg } from "../domain/keys/signing-key.ts";
import { SIGNING_ALGS } from "../domain/keys/signing-key.ts";
import type { KeyState } from "../domain/keys/signing-key.ts";
import { seal, unseal, type SealedKey } from "../domain/keys/sealing.ts";
import type { KeyStatePatch, KeyStore, KeyStoreTx } from "../domain/keys/key-store.ts";
import type { StoredKey } from "../domain/keys/signing-key.ts";

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyStoreError";
  }
}

interface KeyFile {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  activatedAt?: string | null;
  retiredAt?: string | null;
  privateJwk?: JWK;
  sealed?: SealedKey;
}

const KEY_STATES: readonly KeyState[] = ["next", "active", "retired"];
const KID_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** Key files are a few KB; a bigger "key file" is not one, and is not read into memory. */
const MAX_FILE_BYTES = 1 << 20;

/** What operators run to seal plaintext files once KEYS_ENCRYPTION_KEY is set. */
export const SEAL_COMMAND = "npm run cli -- keys seal";
const SEAL_HINT = `seal the existing files with: ${SEAL_COMMAND} (in the container: node dist/scripts/cli.js keys seal), with the same KEYS_DIR and KEYS_ENCRYPTION_KEY`;

/**
 * A path as the operator configured it (`shown`, for messages and fix hints) and as it is used
 * (`real`, KEYS_DIR resolved once per operation, so every step of it works on the directory whose
 * mode and owner were checked even if a symlink on the way is swapped meanwhile).
 */
interface Where {
  real: string;
  shown: string;
}
const inDir = (dir: Where, name: string): Where => ({ real: path.join(dir.real, name), shown: path.join(dir.shown, name) });

/** The uid this process creates files as (null where there are no uids, i.e. Windows). */
function ownUid(): number | null {
  return typeof process.geteuid === "function" ? process.geteuid() : null;
}

const octal = (mode: number) => (mode & 0o7777).toString(8);
const errCode = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;

async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Creates KEYS_DIR if needed and checks it: a directory (a symlink to one is followed: a mount
 * point or a volume path behind a link is a common layout, and what matters is who can write
 * the directory the files are really in, so the resolved directory is what gets checked and used),
 * owned by this user or root, and not writable by group or others (anyone who can write it can
 * add or replace key files whatever their modes).
 */
async function openKeysDir(dir: string): Promise<Where> {
  await ensureDir(dir);
  const real = await fs.realpath(dir);
  const st = await fs.stat(real);
  const shown = real === dir ? `KEYS_DIR ${dir}` : `KEYS_DIR ${dir} (a link to ${real})`;
  if (!st.isDirectory()) throw new KeyStoreError(`${shown} is not a directory`);
  const uid = ownUid();
  if (uid !== null && st.uid !== uid && st.uid !== 0) {
    throw new KeyStoreError(
      `${shown} is owned by uid ${st.uid}, not by uid ${uid} that this process runs as (or root); its owner can replace the signing keys. Run Tessera and its scripts as the owner of KEYS_DIR, or fix with: chown ${uid} ${real}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new KeyStoreError(
      `${shown} is writable by group or others (mode ${octal(st.mode)}); anyone who can write there can add or replace signing keys. Fix with: chmod 700 ${real}`,
    );
  }
  return { real, shown: dir };
}

/** The checks every private file (key, secret, lock) passes, on an lstat or fstat result. */
function checkPrivateStat(st: Stats, file: string, what: string): void {
  if (st.isSymbolicLink()) {
    throw new KeyStoreError(
      `${file} is a symbolic link; a ${what} must be a regular file in KEYS_DIR (a link can point Tessera at a file someone else controls). Replace the link with a copy of the file it points to (mode 600) after checking it, or remove it`,
    );
  }
  if (!st.isFile()) throw new KeyStoreError(`${file} is not a regular file; a ${what} must be one. Remove it`);
  const uid = ownUid();
  if (uid !== null && st.uid !== uid) {
    throw new KeyStoreError(
      `${file} is owned by uid ${st.uid}, not by uid ${uid} that this process runs as; a ${what} owned by another user can be replaced by that user. If you trust its content, fix with: chown ${uid} ${file}`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new KeyStoreError(
      `${file} is readable by group or others (mode ${octal(st.mode)}); private keys must be owner-only. Fix with: chmod 600 ${file}`,
    );
  }
}

/**
 * Reads a private file: lstat for a clear message about links and owners, then open with
 * O_NOFOLLOW (a link swapped in after the lstat is not followed) and fstat the open file, so the
 * bytes read are from the file that passed the checks. O_NONBLOCK: a FIFO planted under a key's
 * name must not hang the start (it is refused as not a regular file).
 */
async function readPrivateFile(file: Where, what: string): Promise<string> {
  checkPrivateStat(await fs.lstat(file.real), file.shown, what);
  let fh: FileHandle;
  try {
    fh = await fs.open(file.real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    if (errCode(err) === "ELOOP") checkPrivateStat(await fs.lstat(file.real), file.shown, what);
    throw err;
  }
  try {
    const st = await fh.stat();
    checkPrivateStat(st, file.shown, what);
    if (st.size > MAX_FILE_BYTES) throw new KeyStoreError(`${file.shown} is too large (${st.size} bytes) to be a ${what}; restore it from backup or remove it`);
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

/**
 * fsync a directory, so that a rename, link or unlink in it is on disk: the file's own fsync does
 * not cover its name, and after a power cut a rotation could otherwise come back half-undone.
 */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory at all; that is not an I/O error.
    if (!["EINVAL", "ENOTSUP", "EISDIR"].includes(errCode(err) ?? "")) throw err;
  } finally {
    await fh.close();
  }
}

async function writeTemp(dir: string, data: string | Buffer): Promise<string> {
  const tmp = path.join(dir, `.tmp-${randomBytes(8).toString("hex")}`);
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Write `data` to `file` atomically with mode 0600; fails with EEXIST if the file exists. */
export async function writeNewFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const dir = path.dirname(file);
  const tmp = await writeTemp(dir, data);
  try {
    await fs.link(tmp, file); // atomic, and refuses to replace an existing file (or a symlink)
  } finally {
    await fs.unlink(tmp);
  }
  await syncDir(dir);
}

/** Replace `file` atomically (readers see the old or the new content, never a mix). */
async function replaceFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const dir = path.dirname(file);
  const tmp = await writeTemp(dir, data);
  try {
    await fs.rename(tmp, file); // replaces a symlink itself, never the file it points to
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

// ---- the directory lock ----
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

const isBusy = (err: unknown) => /^SQLITE_(BUSY|LOCKED)/.test(errCode(err) ?? "");

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
    let journalSet = false;
    for (;;) {
      try {
        // No journal file: nothing is ever written, and the directory stays as it was.
        if (!journalSet) db.pragma("journal_mode = MEMORY");
        journalSet = true;
        db.exec("BEGIN EXCLUSIVE");
        return db;
      } catch (err) {
        if (!isBusy(err)) {
          throw new KeyStoreError(`${file.shown} cannot be used as a lock (${errCode(err) ?? "error"}); remove it when no Tessera process is running`);
        }
        if (Date.now() >= deadline) {
          const pid = await markerPid(inDir(dir, LOCK_MARKER).real);
          throw heldError(inDir(dir, LOCK_MARKER).shown, timeoutMs, `another process${pid ? ` (pid ${pid})` : ""}`);
        }
        await sleep(10 + Math.random() * 20);
      }
    }
  } catch (err) {
    db.close();
    throw err;
  }
}

function releaseOsLock(db: Database.Database): void {
  try {
    db.exec("ROLLBACK");
  } finally {
    db.close(); // closing drops the lock even if the rollback failed
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
      releaseOsLock(db);
    }
  } finally {
    leave();
  }
}

// ---- key files ----

const dateOrNull = (s: string | null | undefined): Date | null => (s ? new Date(s) : null);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A private JWK as far as the store can tell without importing it. */
const isPrivateJwk = (v: unknown): v is JWK => isObject(v) && typeof v.kty === "string" && typeof v.d === "string";

/** JSON.parse without its error message: Node quotes the start of the input in it. */
function parseJson(text: string, file: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KeyStoreError(`${file} is not a valid ${what} (not valid JSON); restore it from backup or remove it`);
  }
}

interface ReadKey {
  key: StoredKey;
  /** the private key is (also) in the clear on disk */
  plaintext: boolean;
}

export interface SealReport {
  /** kids whose files were rewritten sealed */
  sealedKeys: string[];
  alreadySealedKeys: string[];
  /** secret names (`<name>.secret`) rewritten sealed */
  sealedSecrets: string[];
  alreadySealedSecrets: string[];
}

export class FileKeyStore implements KeyStore {
  readonly kind = "file" as const;

  constructor(
    readonly dir: string,
    private readonly encryptionKey: Buffer | null = null,
  ) {}

  private fileOf(dir: Where, kid: string): Where {
    // The kid is not echoed: it may come from a file, and messages never carry file contents.
    if (!KID_RE.test(kid)) throw new KeyStoreError("invalid kid: expected 1 to 128 characters from A-Z a-z 0-9 _ -");
    return inDir(dir, `${kid}.json`);
  }

  private where(real: string): Where {
    return { real, shown: this.dir };
  }

  private async readKey(file: Where, allowPlaintext: boolean): Promise<ReadKey> {
    const parsed = parseJson(await readPrivateFile(file, "key file"), file.shown, "key file");
    const f = (isObject(parsed) ? parsed : {}) as Partial<KeyFile>;
    const { kid, alg, state, createdAt } = f;
    if (
      typeof kid !== "string" ||
      !KID_RE.test(kid) ||
      !SIGNING_ALGS.includes(alg as SigningAlg) ||
      !KEY_STATES.includes(state as KeyState) ||
      typeof createdAt !== "string" ||
      Number.isNaN(Date.parse(createdAt))
    ) {
      throw new KeyStoreError(`${file.shown} is not a valid key file (missing or bad kid, alg, state or createdAt); restore it from backup or remove it`);
    }
    const plaintext = f.privateJwk !== undefined && f.privateJwk !== null;
    if (plaintext && this.encryptionKey && !allowPlaintext) {
      throw new KeyStoreError(`${file.shown} holds its private key in plaintext although KEYS_ENCRYPTION_KEY is set; ${SEAL_HINT}`);
    }
    let privateJwk: JWK;
    if (f.sealed !== undefined && f.sealed !== null) {
      if (!this.encryptionKey) throw new KeyStoreError(`${file.shown} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
      privateJwk = this.unsealJwk(f.sealed, kid, file.shown);
    } else if (isPrivateJwk(f.privateJwk)) {
      privateJwk = f.privateJwk;
    } else {
      throw new KeyStoreError(`${file.shown} is not a valid key file (no private key); restore it from backup or remove it`);
    }
    return {
      plaintext,
      key: {
        kid,
        alg: alg as SigningAlg,
        state: state as KeyState,
        createdAt: new Date(createdAt),
        // Files written before lifecycle timestamps existed: an active key became active when created.
        activatedAt: dateOrNull(f.activatedAt) ?? (state === "active" ? new Date(createdAt) : null),
        retiredAt: dateOrNull(f.retiredAt),
        privateJwk,
      },
    };
  }

  /** Own messages rather than the unseal/JSON errors: those may carry the kid or the plaintext. */
  private unsealJwk(sealed: unknown, kid: string, file: string): JWK {
    let text: string;
    try {
      text = unseal(sealed as SealedKey, kid, this.encryptionKey!);
    } catch {
      throw new KeyStoreError(
        `${file}: KEYS_ENCRYPTION_KEY cannot decrypt key in this file: wrong encryption key, the file was altered, or the sealed key is in an unknown format`,
      );
    }
    let jwk: unknown;
    try {
      jwk = JSON.parse(text) as unknown;
    } catch {
      jwk = null;
    }
    if (!isPrivateJwk(jwk)) throw new KeyStoreError(`${file} is not a valid key file (the sealed private key is not a JWK); restore it from backup or remove it`);
    return jwk;
  }

  private serialize(k: StoredKey): string {
    const file: KeyFile = {
      kid: k.kid,
      alg: k.alg,
      state: k.state,
      createdAt: k.createdAt.toISOString(),
      activatedAt: k.activatedAt?.toISOString() ?? null,
      retiredAt: k.retiredAt?.toISOString() ?? null,
      ...(this.encryptionKey
        ? { sealed: seal(JSON.stringify(k.privateJwk), k.kid, this.encryptionKey) }
        : { privateJwk: k.privateJwk }),
    };
    return JSON.stringify(file, null, 2) + "\n";
  }

  private async keyNames(dir: Where): Promise<string[]> {
    return (await fs.readdir(dir.real)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
  }

  private async listIn(dir: Where, allowPlaintext = false): Promise<ReadKey[]> {
    const names = await this.keyNames(dir);
    return Promise.all(names.map((n) => this.readKey(inDir(dir, n), allowPlaintext)));
  }

  async list(): Promise<StoredKey[]> {
    const dir = await openKeysDir(this.dir);
    return (await this.listIn(dir)).map((r) => r.key);
  }

  async transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return withDirLock(this.dir, (real) => {
      const dir = this.where(real);
      return fn({
        list: async () => (await this.listIn(dir)).map((r) => r.key),
        insert: async (k) => writeNewFileAtomic(this.fileOf(dir, k.kid).real, this.serialize(k)),
        update: async (kid, patch: KeyStatePatch) => {
          const file = this.fileOf(dir, kid);
          const { key: current } = await this.readKey(file, false);
          await replaceFileAtomic(file.real, this.serialize({ ...current, ...patch }));
        },
        remove: async (kid) => {
          const file = this.fileOf(dir, kid);
          try {
            await fs.unlink(file.real);
          } catch (err) {
            if (errCode(err) === "ENOENT") return;
            throw err;
          }
          await syncDir(dir.real);
        },
      });
    });
  }

  secret(name: string): Promise<Buffer> {
    return loadOrCreateSecret(this.dir, name, undefined, this.encryptionKey);
  }

  /**
   * `keys seal`: under the lock, rewrites every key file and secret that is in plaintext sealed
   * with KEYS_ENCRYPTION_KEY (each atomically). Everything is read and checked first, so a file
   * that cannot be read (or a sealed one this key cannot open) stops it before anything changes.
   * Idempotent: sealed files are left as they are.
   */
  async sealAll(): Promise<SealReport> {
    const key = this.encryptionKey;
    if (!key) throw new KeyStoreError("keys seal needs KEYS_ENCRYPTION_KEY: set it to the key the server will run with (32 bytes, base64: openssl rand -base64 32)");
    return withDirLock(this.dir, async (real) => {
      const dir = this.where(real);
      const keys = await this.listIn(dir, true);
      const secretNames = (await fs.readdir(dir.real))
        .filter((n) => n.endsWith(".secret") && !n.startsWith("."))
        .map((n) => n.slice(0, -".secret".length))
        .sort();
      const secrets = await Promise.all(
        secretNames.map(async (name) => ({ name, ...(await readSecretFile(inDir(dir, `${name}.secret`), name, key, true)) })),
      );
      const report: SealReport = { sealedKeys: [], alreadySealedKeys: [], sealedSecrets: [], alreadySealedSecrets: [] };
      for (const { key: k, plaintext } of keys) {
        if (!plaintext) {
          report.alreadySealedKeys.push(k.kid);
          continue;
        }
        const file = this.fileOf(dir, k.kid);
        await replaceFileAtomic(file.real, this.serialize(k));
        // What is on disk now opens with this key to the same private key, or we say so.
        const back = await this.readKey(file, false);
        if (JSON.stringify(back.key.privateJwk) !== JSON.stringify(k.privateJwk)) throw new KeyStoreError(`${file.shown}: sealing did not round-trip; restore it from backup`);
        report.sealedKeys.push(k.kid);
      }
      for (const s of secrets) {
        if (!s.plaintext) {
          report.alreadySealedSecrets.push(s.name);
          continue;
        }
        await replaceFileAtomic(inDir(dir, `${s.name}.secret`).real, sealedSecretContent(s.secret, s.name, key));
        report.sealedSecrets.push(s.name);
      }
      return report;
    });
  }
}

const SECRET_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

const sealedSecretContent = (secret: Buffer, name: string, key: Buffer) => JSON.stringify(seal(secret.toString("base64"), `secret:${name}`, key)) + "\n";

/** Reads and checks a secret file; with `allowPlaintext` (only `keys seal`), a plain one is returned as such. */
async function readSecretFile(file: Where, name: string, encryptionKey: Buffer | null, allowPlaintext: boolean): Promise<{ secret: Buffer; plaintext: boolean }> {
  const stored = (await readPrivateFile(file, "secret file")).trim();
  let encoded = stored;
  const plaintext = !stored.startsWith("{");
  if (!plaintext) {
    if (!encryptionKey) throw new KeyStoreError(`${file.shown} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
    const sealed = parseJson(stored, file.shown, "secret file");
    try {
      encoded = unseal(sealed as SealedKey, `secret:${name}`, encryptionKey);
    } catch {
      throw new KeyStoreError(`${file.shown}: KEYS_ENCRYPTION_KEY cannot decrypt this secret: wrong encryption key, or the file was altered`);
    }
  } else if (encryptionKey && !allowPlaintext) {
    throw new KeyStoreError(`${file.shown} holds the ${name} secret in plaintext although KEYS_ENCRYPTION_KEY is set; ${SEAL_HINT}`);
  }
  const secret = Buffer.from(encoded, "base64");
  if (secret.length !== 32) throw new KeyStoreError(`${file.shown} is not a valid secret (expected 32 bytes, base64); restore it from backup or remove it`);
  return { secret, plaintext };
}

/**
 * A 32-byte server secret kept next to the keys (created on first start), unless given in the
 * environment. Used to derive successor refresh tokens. With KEYS_ENCRYPTION_KEY it is sealed
 * like the keys, and a plaintext one is refused (`keys seal` seals it).
 */
export async function loadOrCreateSecret(dir: string, name: string, fromEnv?: string, encryptionKey: Buffer | null = null): Promise<Buffer> {
  if (fromEnv) {
    const secret = Buffer.from(fromEnv, "base64");
    if (secret.length < 32) throw new KeyStoreError(`the ${name} secret from the environment must be at least 32 bytes, base64`);
    return secret;
  }
  if (!SECRET_NAME_RE.test(name)) throw new KeyStoreError("invalid secret name");
  const where = await openKeysDir(dir);
  const file = inDir(where, `${name}.secret`);
  const fresh = randomBytes(32);
  const content = encryptionKey ? sealedSecretContent(fresh, name, encryptionKey) : fresh.toString("base64") + "\n";
  try {
    await writeNewFileAtomic(file.real, content);
  } catch (err) {
    if (errCode(err) !== "EEXIST") throw err;
  }
  return (await readSecretFile(file, name, encryptionKey, false)).secret;
}
