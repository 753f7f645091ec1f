// Atomic file writes in KEYS_DIR: temp file, fsync, then link for new files / rename for
// updates, then an fsync of the directory so the new name survives a power cut.
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { errCode } from "./errno.ts";

/**
 * fsync a directory, so that a rename, link or unlink in it is on disk: the file's own fsync does
 * not cover its name, and after a power cut a rotation could otherwise come back half-undone.
 */
export async function syncDir(dir: string): Promise<void> {
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
export async function replaceFileAtomic(file: string, data: string | Buffer): Promise<void> {
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
