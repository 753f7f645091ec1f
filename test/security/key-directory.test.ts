// Security finding 7, "the key directory is trusted too much", as an operator meets it: the file
// key store (and so the server start) refuses a KEYS_DIR that group or others can write, key and
// secret files that are symlinks or owned by another user, and plaintext private keys or secrets
// while KEYS_ENCRYPTION_KEY is set (`keys seal` is the way out); no message carries anything read
// from a file; the KEYS_DIR lock cannot have two holders, not even when it was left behind by a
// crashed holder and several processes race for it; every published or removed key/secret name is
// made durable with an fsync of the directory.
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { generateKey } from "../../src/domain/keys/generate.ts";
import { KeyManager } from "../../src/domain/keys/key-manager.ts";
import { seal, unseal, type SealedKey } from "../../src/domain/keys/sealing.ts";
import { keyPolicy } from "../../src/services.ts";
import { FileKeyStore } from "../../src/storage/file-key-store.ts";
import { withDirLock } from "../../src/storage/files/dir-lock.ts";
import { KeyStoreError } from "../../src/storage/key-store-error.ts";
import { loadOrCreateSecret } from "../../src/storage/secret-file.ts";
import { describeResult, killAllScripts, runCli } from "../helpers/cli.ts";
import { killAll, killAllIssuers, ROOT, spawnIssuer, spawnNode, type IssuerProcess, type NodeChild } from "../helpers/process.ts";

const NOW = new Date("2030-01-01T00:00:00Z");
const ENC = randomBytes(32);
const ENC_B64 = ENC.toString("base64");
/** Written at the very start of corrupt files: Node's JSON.parse quotes the first 10 characters. */
const MARKER = "LEAKMARK42";
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

const tmpDirs: string[] = [];
/** A fresh 0700 directory (mkdtemp) for one test. */
function tmp(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-keydir-"));
  tmpDirs.push(dir);
  return dir;
}

const children = new Set<NodeChild>();
afterEach(async () => {
  vi.restoreAllMocks();
  await killAll(children);
  await killAllIssuers();
  await killAllScripts();
});
afterAll(() => {
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** KEYS_DIR with one active key, made the way a first server start makes it. */
async function withKey(dir: string, encryptionKey: Buffer | null = null) {
  const store = new FileKeyStore(dir, encryptionKey);
  await new KeyManager({ store, clock: { now: () => NOW }, policy: keyPolicy(loadConfig({})), signingAlg: "ES256" }).ensureInitialKey();
  const names = readdirSync(dir).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  expect(names).toHaveLength(1);
  const kid = names[0]!.slice(0, -".json".length);
  return { store, kid, file: path.join(dir, names[0]!) };
}

const rejection = (p: Promise<unknown>): Promise<Error | null> =>
  p.then(
    () => null,
    (e: unknown) => e as Error,
  );

/** The refusal an operator must see: a KeyStoreError that says what and how to fix, and no file content. */
function expectRefusal(err: Error | null, parts: (string | RegExp)[]): void {
  expect(err, "expected a refusal").not.toBeNull();
  expect(err, err?.stack).toBeInstanceOf(KeyStoreError);
  for (const p of parts) {
    if (typeof p === "string") expect(err!.message).toContain(p);
    else expect(err!.message).toMatch(p);
  }
  expect(err!.message).not.toContain(MARKER);
}

/** Every name and byte in `dir` (to show a refusal changed nothing). */
const snapshot = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((n) => `${n} ${(statSync(path.join(dir, n)).mode & 0o777).toString(8)} ${readFileSync(path.join(dir, n)).toString("base64")}`)
    .join("\n");

// ---- a real server process, as an operator starts it ----

function issuerEnv(dir: string, keysDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: "0",
    HOST: "127.0.0.1",
    ISSUER: "https://issuer.test",
    ALLOWED_ORIGINS: "https://app.test",
    KEYS_DIR: keysDir,
    DATABASE_URL: `file:${path.join(dir, "db", "t.db")}`,
    COOKIE_SECURE: "false",
    LOG_LEVEL: "info",
    PRUNE_INTERVAL: "0",
    ...extra,
  };
}

/** Starts the server; resolves with whether it listened, or how it exited. */
async function startOutcome(proc: IssuerProcess): Promise<{ listening: boolean; code: number | null }> {
  try {
    await proc.listening(90_000);
    return { listening: true, code: null };
  } catch {
    return { listening: false, code: (await proc.exited(30_000)).code };
  }
}

/** The start is refused as an operator sees it: exit 1, no listener, and `parts` in the output. */
async function expectStartRefused(proc: IssuerProcess, parts: string[]): Promise<string> {
  const outcome = await startOutcome(proc);
  const out = proc.output();
  expect(outcome, `the server should have refused to start:\n${out}`).toEqual({ listening: false, code: 1 });
  expect(out).not.toMatch(/Tessera listening/);
  expect(out).toMatch(/cannot start/);
  for (const p of parts) expect(out).toContain(p);
  expect(out).not.toContain(MARKER);
  return out;
}

describe("KEYS_DIR writable by group or others", () => {
  it("list(), the secret and a transaction refuse it, naming the directory and `chmod 700`; nothing is written", async () => {
    const dir = path.join(tmp(), "keys");
    const { store } = await withKey(dir);
    await loadOrCreateSecret(dir, "refresh-token");
    for (const mode of [0o770, 0o775, 0o707, 0o1777]) {
      chmodSync(dir, mode);
      const before = snapshot(dir);
      const label = `mode ${mode.toString(8)}`;
      const parts = [dir, "writable by group or others", `chmod 700 ${dir}`];
      expectRefusal(await rejection(store.list()), parts);
      expectRefusal(await rejection(loadOrCreateSecret(dir, "refresh-token")), parts);
      expectRefusal(await rejection(store.secret("refresh-token")), parts);
      let ran = false;
      expectRefusal(
        await rejection(
          store.transaction(async () => {
            ran = true;
          }),
        ),
        parts,
      );
      expect(ran, label).toBe(false);
      expect(snapshot(dir), label).toBe(before);
    }
    chmodSync(dir, 0o700);
    expect(await store.list()).toHaveLength(1);
  });

  it("a KEYS_DIR that is a symlink is followed, and the directory it points to is what gets checked", async () => {
    const base = tmp();
    const real = path.join(base, "volume", "keys");
    mkdirSync(real, { recursive: true, mode: 0o700 });
    const link = path.join(base, "keys");
    symlinkSync(real, link);
    // A common layout (a volume behind a link): works while the real directory is owner-only.
    const { kid } = await withKey(link);
    expect(existsSync(path.join(real, `${kid}.json`))).toBe(true);
    chmodSync(real, 0o775);
    expectRefusal(await rejection(new FileKeyStore(link).list()), [link, "writable by group or others", `chmod 700 ${real}`]);
  });

  it("server process: the start fails with exit code 1 and the chmod 700 hint; no key is created", async () => {
    const dir = tmp();
    const keysDir = path.join(dir, "keys");
    mkdirSync(keysDir, { mode: 0o700 });
    chmodSync(keysDir, 0o775);
    const proc = spawnIssuer(issuerEnv(dir, keysDir));
    await expectStartRefused(proc, [keysDir, "writable by group or others", `chmod 700 ${keysDir}`]);
    expect(readdirSync(keysDir).filter((n) => n.endsWith(".json") || n.endsWith(".secret"))).toEqual([]);
  }, 120_000);
});

describe("key and secret files that are symlinks or belong to someone else", () => {
  it("a key file that is a symlink (to an owner-only, valid key file) is refused; so is a symlinked secret", async () => {
    const dir = path.join(tmp(), "keys");
    const { store, file } = await withKey(dir);
    await loadOrCreateSecret(dir, "refresh-token");
    const elsewhere = path.join(path.dirname(dir), "elsewhere");
    mkdirSync(elsewhere, { mode: 0o700 });
    const target = path.join(elsewhere, path.basename(file));
    renameSync(file, target);
    symlinkSync(target, file);
    expectRefusal(await rejection(store.list()), [file, "symbolic link"]);
    await expect(new KeyManager({ store, clock: { now: () => NOW }, policy: keyPolicy(loadConfig({})), signingAlg: "ES256" }).ensureInitialKey()).rejects.toBeInstanceOf(
      KeyStoreError,
    );

    const secret = path.join(dir, "refresh-token.secret");
    const secretTarget = path.join(elsewhere, "refresh-token.secret");
    renameSync(secret, secretTarget);
    symlinkSync(secretTarget, secret);
    expectRefusal(await rejection(loadOrCreateSecret(dir, "refresh-token")), [secret, "symbolic link"]);
    expectRefusal(await rejection(store.secret("refresh-token")), [secret, "symbolic link"]);
  });

  it.skipIf(!isRoot)("a key file or secret owned by another user (uid 1) is refused, naming the owner and `chown`", async () => {
    const dir = path.join(tmp(), "keys");
    const { store, file } = await withKey(dir);
    await loadOrCreateSecret(dir, "refresh-token");
    const secret = path.join(dir, "refresh-token.secret");
    const uid = process.getuid!();
    chownSync(file, 1, 1);
    expectRefusal(await rejection(store.list()), [file, "owned by uid 1", `chown ${uid} ${file}`]);
    chownSync(file, uid, uid);
    expect(await store.list()).toHaveLength(1);
    chownSync(secret, 1, 1);
    expectRefusal(await rejection(loadOrCreateSecret(dir, "refresh-token")), [secret, "owned by uid 1", `chown ${uid} ${secret}`]);
  });

  it("a world-readable key file is still refused with `chmod 600` (the existing check stays)", async () => {
    const dir = path.join(tmp(), "keys");
    const { store, file } = await withKey(dir);
    chmodSync(file, 0o644);
    expectRefusal(await rejection(store.list()), [file, "readable by group or others", `chmod 600 ${file}`]);
  });
});

describe("plaintext files while KEYS_ENCRYPTION_KEY is set", () => {
  it("a plaintext private key file is refused, naming the file and `keys seal`; nothing is changed", async () => {
    const dir = path.join(tmp(), "keys");
    const { file } = await withKey(dir, null);
    const before = snapshot(dir);
    const sealedStore = new FileKeyStore(dir, ENC);
    expectRefusal(await rejection(sealedStore.list()), [file, "plaintext", "KEYS_ENCRYPTION_KEY", "keys seal"]);
    const manager = new KeyManager({ store: sealedStore, clock: { now: () => NOW }, policy: keyPolicy(loadConfig({})), signingAlg: "ES256" });
    await expect(manager.ensureInitialKey()).rejects.toBeInstanceOf(KeyStoreError);
    expect(snapshot(dir)).toBe(before);
  });

  it("a plaintext refresh-token secret is refused, naming the file and `keys seal` (no longer read 'from before encryption')", async () => {
    const dir = path.join(tmp(), "keys");
    await loadOrCreateSecret(dir, "refresh-token");
    const secret = path.join(dir, "refresh-token.secret");
    const before = readFileSync(secret);
    expectRefusal(await rejection(loadOrCreateSecret(dir, "refresh-token", undefined, ENC)), [secret, "plaintext", "KEYS_ENCRYPTION_KEY", "keys seal"]);
    expectRefusal(await rejection(new FileKeyStore(dir, ENC).secret("refresh-token")), [secret, "plaintext", "keys seal"]);
    expect(readFileSync(secret).equals(before)).toBe(true);
  });

  it("operator path: the server refuses plaintext files; `keys seal` seals them (idempotent); then the server starts with the same key and secret", async () => {
    const dir = tmp();
    const keysDir = path.join(dir, "keys");
    const { kid, file } = await withKey(keysDir, null);
    const secretFile = path.join(keysDir, "refresh-token.secret");
    const secret = await loadOrCreateSecret(keysDir, "refresh-token");
    const privateD = (JSON.parse(readFileSync(file, "utf8")) as { privateJwk: { d: string } }).privateJwk.d;
    const env = issuerEnv(dir, keysDir, { KEYS_ENCRYPTION_KEY: ENC_B64 });
    const before = snapshot(keysDir);

    // 1. The start is refused and says what to run.
    const refused = await expectStartRefused(spawnIssuer(env), [file, "plaintext", "keys seal"]);
    expect(refused).not.toContain(privateD);
    expect(snapshot(keysDir)).toBe(before);

    // 2. keys seal without KEYS_ENCRYPTION_KEY has nothing to seal with.
    const cliEnv = { DATABASE_URL: env.DATABASE_URL!, KEYS_DIR: keysDir };
    const noKey = await runCli(["keys", "seal"], cliEnv);
    expect(noKey.code, describeResult(noKey)).toBe(1);
    expect(noKey.stderr).toMatch(/KEYS_ENCRYPTION_KEY/);
    expect(snapshot(keysDir)).toBe(before);

    // 3. keys seal: says what it did, prints nothing secret.
    const sealed = await runCli(["keys", "seal"], { ...cliEnv, KEYS_ENCRYPTION_KEY: ENC_B64 });
    expect(sealed.code, describeResult(sealed)).toBe(0);
    expect(sealed.stdout).toContain(`sealed key ${kid}`);
    expect(sealed.stdout).toContain("refresh-token.secret");
    for (const s of [privateD, secret.toString("base64"), ENC_B64]) expect(sealed.stdout + sealed.stderr).not.toContain(s);
    const onDisk = readFileSync(file, "utf8");
    expect(onDisk).not.toContain(privateD);
    expect(JSON.parse(onDisk)).toMatchObject({ kid, sealed: { v: 1, alg: "A256GCM" } });
    expect(JSON.parse(onDisk)).not.toHaveProperty("privateJwk");
    const sealedSecret = JSON.parse(readFileSync(secretFile, "utf8")) as SealedKey;
    expect(Buffer.from(unseal(sealedSecret, "secret:refresh-token", ENC), "base64").equals(secret)).toBe(true);
    for (const n of readdirSync(keysDir)) expect((statSync(path.join(keysDir, n)).mode & 0o777).toString(8), n).toBe("600");

    // 4. Idempotent: a second run changes nothing and says so.
    const afterSeal = snapshot(keysDir);
    const again = await runCli(["keys", "seal"], { ...cliEnv, KEYS_ENCRYPTION_KEY: ENC_B64 });
    expect(again.code, describeResult(again)).toBe(0);
    expect(again.stdout).toMatch(/nothing to seal/);
    expect(snapshot(keysDir)).toBe(afterSeal);

    // 5. Now the server starts, publishing the same key.
    const proc = spawnIssuer(env);
    const { baseUrl } = await proc.listening(90_000);
    const jwks = (await (await fetch(`${baseUrl}/.well-known/jwks.json`, { signal: AbortSignal.timeout(15_000) })).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual([kid]);
    proc.child.kill("SIGTERM");
    expect(await proc.exited(30_000), proc.output()).toEqual({ code: 0, signal: null });
  }, 240_000);
});

describe("error messages never carry file contents", () => {
  it("a corrupt key file: the error names the file, none of its content", async () => {
    const dir = path.join(tmp(), "keys");
    const { store, file } = await withKey(dir);
    writeFileSync(file, `${MARKER}-d=not-json-private-key-material\n`, { mode: 0o600 });
    expectRefusal(await rejection(store.list()), [file, "not a valid key file"]);
  });

  it("a sealed key whose plaintext is not JSON, and a corrupt sealed secret: no content in the error", async () => {
    const dir = path.join(tmp(), "keys");
    const { store, file } = await withKey(dir, ENC);
    const parsed = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    // Sealed correctly (right key, right kid) but the plaintext is not a JWK.
    writeFileSync(file, JSON.stringify({ ...parsed, sealed: seal(`${MARKER} private key text`, String(parsed.kid), ENC) }), { mode: 0o600 });
    expectRefusal(await rejection(store.list()), [file]);

    const secret = path.join(dir, "refresh-token.secret");
    writeFileSync(secret, `{"ct": ${MARKER} secret bytes}\n`, { mode: 0o600 });
    expectRefusal(await rejection(store.secret("refresh-token")), [secret]);
  });

  it("server process: a corrupt key file stops the start (exit 1) naming the file; the output holds none of the file", async () => {
    const dir = tmp();
    const keysDir = path.join(dir, "keys");
    const { file } = await withKey(keysDir);
    writeFileSync(file, `${MARKER}-d=not-json-private-key-material\n`, { mode: 0o600 });
    await expectStartRefused(spawnIssuer(issuerEnv(dir, keysDir)), [file, "not a valid key file"]);
    expect(readFileSync(file, "utf8")).toContain(MARKER); // left as it was
  }, 120_000);
});

// ---- the lock, with real processes ----

/**
 * A child process (node --import tsx, like the scripts) running withDirLock from this checkout.
 * "race": for each round, waits for <go>.<round> (a start time), spins until then, takes the lock
 * and logs "enter pid" / "exit pid" around a `holdMs` critical section. "hold": takes the lock,
 * logs "enter pid", says "holding" and keeps it until killed.
 */
const CHILD = `
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { withDirLock } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src", "storage", "files", "dir-lock.ts")).href)};
const [mode, dir, log, go, holdMs, timeoutMs, rounds] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const write = (line) => appendFileSync(log, line + "\\n");
if (mode === "race") {
  // A busy event loop, as in a server under load: every await inside withDirLock then takes a
  // few ms, so the processes' steps interleave in every possible order (timing must not matter).
  let loaded = true;
  const load = () => {
    if (!loaded) return;
    const until = Date.now() + 1 + Math.random() * 3;
    while (Date.now() < until);
    setImmediate(load);
  };
  load();
  process.stdout.write("ready\\n");
  for (let round = 0; round < Number(rounds); round++) {
    const goFile = go + "." + round;
    while (!existsSync(goFile)) await sleep(1);
    await sleep(Number(readFileSync(goFile, "utf8")) - Date.now()); // all start at the same moment
    await withDirLock(dir, async () => {
      write("enter " + process.pid);
      await sleep(Number(holdMs));
      write("exit " + process.pid);
    }, Number(timeoutMs));
    process.stdout.write("done " + round + "\\n");
  }
  loaded = false;
} else {
  setInterval(() => undefined, 60_000); // stay alive while holding
  await withDirLock(dir, async () => {
    write("enter " + process.pid);
    process.stdout.write("holding\\n");
    await new Promise(() => undefined);
  }, Number(timeoutMs));
}
`;

interface Child extends NodeChild {
  /** resolves once stdout has had `line` `count` times */
  saw(line: string, count?: number, timeoutMs?: number): Promise<void>;
}

function startChild(script: string, args: string[]): Child {
  const child = spawnNode(`child ${args[0]}`, ["--import", "tsx", script, ...args], { group: children });
  return Object.assign(child, {
    saw: async (line: string, count = 1, timeoutMs = 60_000) => {
      const seen = () => child.stdout.filter((l) => l === line).length >= count || undefined;
      await child.until(seen, `printing ${JSON.stringify(line)} x${count}`, timeoutMs);
    },
  });
}

/** A lock left behind by a crashed holder, in the form every version has written it (.lock, O_EXCL). */
function plantStaleLock(dir: string): void {
  const lock = path.join(dir, ".lock");
  writeFileSync(lock, "99999 2029-12-31T23:59:00.000Z\n", { mode: 0o600 });
  const old = new Date(Date.now() - 120_000);
  utimesSync(lock, old, old);
}

/** The critical sections in `log` never overlap: enter/exit pairs of one pid, one after the other. */
function expectNoOverlap(log: string, expectedSections: number): void {
  const lines = readFileSync(log, "utf8").trim().split("\n");
  const problems: string[] = [];
  let inside: string | null = null;
  for (const [i, line] of lines.entries()) {
    const [what, pid] = line.split(" ");
    if (what === "enter") {
      if (inside !== null) problems.push(`line ${i + 1}: ${pid} entered while ${inside} was inside`);
      inside = pid!;
    } else {
      if (inside !== pid) problems.push(`line ${i + 1}: ${pid} left while ${inside ?? "nobody"} was inside`);
      inside = null;
    }
  }
  expect(problems, `critical sections overlapped:\n${lines.join("\n")}`).toEqual([]);
  expect(lines.filter((l) => l.startsWith("enter"))).toHaveLength(expectedSections);
}

describe("the KEYS_DIR lock", () => {
  it("several processes racing for a lock left stale by a crashed holder: their critical sections never overlap", async () => {
    const base = tmp();
    const dir = path.join(base, "keys");
    mkdirSync(dir, { mode: 0o700 });
    const script = path.join(base, "child.mts");
    writeFileSync(script, CHILD);
    const log = path.join(base, "sections.log");
    writeFileSync(log, "");
    const go = path.join(base, "go");
    const N = 6;
    const ROUNDS = 4;
    const racers = Array.from({ length: N }, () => startChild(script, ["race", dir, log, go, "60", "60000", String(ROUNDS)]));
    await Promise.all(racers.map((c) => c.saw("ready")));
    for (let round = 0; round < ROUNDS; round++) {
      plantStaleLock(dir);
      writeFileSync(`${go}.${round}.tmp`, String(Date.now() + 300));
      renameSync(`${go}.${round}.tmp`, `${go}.${round}`);
      await Promise.all(racers.map((c) => c.saw(`done ${round}`)));
    }
    const codes = await Promise.all(racers.map(async (c) => (await c.exited()).code));
    expect(codes, racers.map((c) => `pid ${c.pid}\n${c.output()}`).join("\n")).toEqual(Array(N).fill(0));
    expectNoOverlap(log, N * ROUNDS);
    expect(readdirSync(dir)).not.toContain(".lock");
  }, 180_000);

  it("a holder killed with SIGKILL does not hold up the next one: it gets the lock at once, not after a stale timeout", async () => {
    const base = tmp();
    const dir = path.join(base, "keys");
    mkdirSync(dir, { mode: 0o700 });
    const script = path.join(base, "child.mts");
    writeFileSync(script, CHILD);
    const log = path.join(base, "sections.log");
    writeFileSync(log, "");
    const holder = startChild(script, ["hold", dir, log, "-", "0", "10000", "0"]);
    await holder.saw("holding");
    await holder.kill(); // SIGKILL

    const started = Date.now();
    const got = await rejection(
      withDirLock(
        dir,
        async () => {
          expect(readFileSync(log, "utf8")).toBe(`enter ${holder.pid}\n`);
          return "next";
        },
        5_000,
      ).then((r) => {
        expect(r).toBe("next");
      }),
    );
    expect(got, "the next holder could not get the lock after the previous one was killed").toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(readdirSync(dir)).not.toContain(".lock");
    for (const n of readdirSync(dir)) expect((statSync(path.join(dir, n)).mode & 0o777).toString(8), n).toBe("600");
  }, 60_000);

  it("a live holder is never broken, even when its lock file looks stale (a paused process, a clock jump); the waiter's error names the lock and the holder", async () => {
    const base = tmp();
    const dir = path.join(base, "keys");
    mkdirSync(dir, { mode: 0o700 });
    const script = path.join(base, "child.mts");
    writeFileSync(script, CHILD);
    const log = path.join(base, "sections.log");
    writeFileSync(log, "");
    const holder = startChild(script, ["hold", dir, log, "-", "0", "10000", "0"]);
    await holder.saw("holding");
    const lock = path.join(dir, ".lock");
    const old = new Date(Date.now() - 120_000);
    utimesSync(lock, old, old);

    let ran = false;
    const err = await rejection(
      withDirLock(
        dir,
        async () => {
          ran = true;
        },
        1_500,
      ),
    );
    expect(ran, "the lock of a live holder was broken").toBe(false);
    expectRefusal(err, [lock, "held by another process", `pid ${holder.pid}`]);
    expect(holder.child.exitCode).toBeNull();
    expect(readFileSync(log, "utf8")).toBe(`enter ${holder.pid}\n`);
  }, 60_000);
});

// ---- durability ----

describe("directory fsync", () => {
  it("every rename, link and unlink that publishes or removes a key or secret file is followed by an fsync of KEYS_DIR", async () => {
    const dir = path.join(tmp(), "keys");
    mkdirSync(dir, { mode: 0o700 });
    const realDir = realpathSync(dir);
    const events: string[] = [];
    const opened = new WeakMap<object, string>();
    const real = { open: fsp.open, rename: fsp.rename, link: fsp.link, unlink: fsp.unlink };
    vi.spyOn(fsp, "open").mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
      const fh = await real.open(...args);
      opened.set(fh, String(args[0]));
      return fh;
    });
    vi.spyOn(fsp, "rename").mockImplementation(async (from, to) => {
      await real.rename(from, to);
      events.push(`rename ${path.basename(String(to))}`);
    });
    vi.spyOn(fsp, "link").mockImplementation(async (from, to) => {
      await real.link(from, to);
      events.push(`link ${path.basename(String(to))}`);
    });
    vi.spyOn(fsp, "unlink").mockImplementation(async (p) => {
      await real.unlink(p);
      events.push(`unlink ${path.basename(String(p))}`);
    });
    const probe = await real.open(os.devNull, "r");
    const proto = Object.getPrototypeOf(probe) as { sync(this: object): Promise<void> };
    await probe.close();
    const realSync = proto.sync;
    vi.spyOn(proto, "sync").mockImplementation(async function (this: object) {
      await realSync.call(this);
      events.push(`sync ${opened.get(this) === realDir ? "KEYS_DIR" : "file"}`);
    });

    const store = new FileKeyStore(dir);
    const key = await generateKey("ES256", "active", NOW);
    await loadOrCreateSecret(dir, "refresh-token"); // link
    await store.transaction((tx) => tx.insert(key)); // link
    await store.transaction((tx) => tx.update(key.kid, { state: "retired", retiredAt: NOW })); // rename
    await store.transaction((tx) => tx.remove(key.kid)); // unlink
    vi.restoreAllMocks();

    const publishing = (e: string) => /^(link|rename|unlink) [^.].*\.(json|secret)$/.test(e);
    const published = events.filter(publishing);
    expect(published).toEqual(["link refresh-token.secret", `link ${key.kid}.json`, `rename ${key.kid}.json`, `unlink ${key.kid}.json`]);
    for (const [i, e] of events.entries()) {
      if (!publishing(e)) continue;
      const next = events.slice(i + 1).find((x) => publishing(x) || x === "sync KEYS_DIR");
      expect(next, `after "${e}" in:\n${events.join("\n")}`).toBe("sync KEYS_DIR");
    }
  });
});
