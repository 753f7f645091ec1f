// KEYS_DIR and the private files in it (keys, secrets, the lock), as the file key store and the
// secret file check and read them: a directory only its owner can write, files only their owner
// can read, no links. Messages name files, modes and owners, never file contents (they end up
// in logs).
import { constants as fsConstants, type Stats } from "node:fs";
import fs, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import { KeyStoreError } from "../key-store-error.ts";
import { errCode } from "./errno.ts";

/** Key files are a few KB; a bigger "key file" is not one, and is not read into memory. */
const MAX_FILE_BYTES = 1 << 20;

/** What operators run to seal plaintext files once KEYS_ENCRYPTION_KEY is set. */
const SEAL_COMMAND = "npm run cli -- keys seal";
export const SEAL_HINT = `seal the existing files with: ${SEAL_COMMAND} (in the container: node dist/scripts/cli.js keys seal), with the same KEYS_DIR and KEYS_ENCRYPTION_KEY`;

/**
 * A path as the operator configured it (`shown`, for messages and fix hints) and as it is used
 * (`real`, KEYS_DIR resolved once per operation, so every step of it works on the directory whose
 * mode and owner were checked even if a symlink on the way is swapped meanwhile).
 */
export interface Where {
  real: string;
  shown: string;
}
export const inDir = (dir: Where, name: string): Where => ({ real: path.join(dir.real, name), shown: path.join(dir.shown, name) });

/** The uid this process creates files as (null where there are no uids, i.e. Windows). */
function ownUid(): number | null {
  return typeof process.geteuid === "function" ? process.geteuid() : null;
}

const octal = (mode: number) => (mode & 0o7777).toString(8);

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
export async function openKeysDir(dir: string): Promise<Where> {
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
export function checkPrivateStat(st: Stats, file: string, what: string): void {
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
export async function readPrivateFile(file: Where, what: string): Promise<string> {
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

/** JSON.parse without its error message: Node quotes the start of the input in it. */
export function parseJson(text: string, file: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KeyStoreError(`${file} is not a valid ${what} (not valid JSON); restore it from backup or remove it`);
  }
}
