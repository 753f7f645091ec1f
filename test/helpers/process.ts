// Node child processes for the tests and the benchmark: the issuer as a real process (for what
// app.inject() cannot show: the listen socket, signals, exit codes, migrations and files on first
// start), the admin scripts (cli.ts), baseline workers. Every child is tracked: whatever is still
// running when this process exits is SIGKILLed with its descendants; killAll() in
// afterEach/afterAll leaves nothing running.
// Shared by test/ and bench/ (no vitest imports here).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Only what a child needs from our environment (these keys and `also`); the rest is explicit. */
export function baseEnv(also: string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG", "SYSTEMROOT", ...also]) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

export interface NodeChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** complete stdout lines so far (empty ones left out) */
  readonly stdout: string[];
  readonly stderr: string;
  /** stdout as written */
  stdoutText(): string;
  /** every line of both streams, for failure messages */
  output(): string;
  /** the last `n` lines of both streams, in the order they came */
  tail(n?: number): string;
  /** parsed stdout lines that are JSON (pino logs) */
  logs(): Record<string, unknown>[];
  isRunning(): boolean;
  /** resolves when the process has exited; rejects after timeoutMs (Infinity: waits) */
  exited(timeoutMs?: number): Promise<Exit>;
  /**
   * Resolves with the first result of `check`, called now and on every stdout line, other than
   * undefined; rejects when the process exits first (`before ${what}`) or after timeoutMs.
   */
  until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T>;
  /** SIGKILL if still running, then wait for the exit */
  kill(): Promise<void>;
  /** SIGTERM (graceful), SIGKILL after graceMs; wait for the exit, then SIGKILL any descendant left */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  /** the child's environment; default: ours, all of it */
  env?: Record<string, string>;
  /** keep stdin open (a pipe) for commands */
  stdin?: boolean;
  /** called with every complete stdout line */
  onLine?: (line: string) => void;
  /** also tracked here until it exits (for killAll) */
  group?: Set<NodeChild>;
  /**
   * Keep only the last 200 lines and 500 kB of stdout: for long-lived children whose output
   * is not read (a server under load).
   */
  bounded?: boolean;
}

const live = new Set<NodeChild>();
// Last resort if this process goes away without its hooks running: no orphaned children.
process.once("exit", () => {
  for (const c of live) for (const pid of [...descendants(c.pid), c.pid]) trySignal(pid, "SIGKILL");
});

/** The children spawned here that are still running. */
export const liveChildren = (): NodeChild[] => [...live];

/** `node <args>` in the repository root. */
export function spawnNode(name: string, args: string[], opts: SpawnOptions = {}): NodeChild {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: opts.env, stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not spawn ${name}`);
  const stdout: string[] = [];
  const recent: string[] = [];
  let stdoutText = "";
  let stderr = "";
  const keepRecent = (l: string) => {
    recent.push(l.length > 2000 ? `${l.slice(0, 2000)}...` : l);
    if (recent.length > 200) recent.splice(0, recent.length - 200);
  };
  const waiters = new Set<() => void>();
  const lines = (onLine: (l: string) => void) => {
    let partial = "";
    return {
      add(chunk: string) {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const l of parts) onLine(l);
      },
      flush() {
        if (partial) onLine(partial);
        partial = "";
      },
    };
  };
  const outLines = lines((l) => {
    if (l) {
      stdout.push(l);
      if (opts.bounded && stdout.length > 200) stdout.splice(0, stdout.length - 200);
      keepRecent(l);
    }
    opts.onLine?.(l);
  });
  const errLines = lines((l) => l && keepRecent(l));
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdoutText += chunk;
    if (opts.bounded && stdoutText.length > 1_000_000) stdoutText = stdoutText.slice(-500_000);
    outLines.add(chunk);
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (opts.bounded && stderr.length > 1_000_000) stderr = stderr.slice(-500_000);
    errLines.add(chunk);
  });
  let exit: Exit | undefined;
  const exitPromise = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      outLines.flush();
      errLines.flush();
      exit = { code, signal };
      live.delete(proc);
      opts.group?.delete(proc);
      for (const w of waiters) w();
      resolve(exit);
    });
  });

  const proc: NodeChild = {
    name,
    child,
    pid: child.pid,
    stdout,
    get stderr() {
      return stderr;
    },
    stdoutText: () => stdoutText,
    output: () => `--- stdout ---\n${stdout.join("\n")}\n--- stderr ---\n${stderr}`,
    tail: (n = 40) => recent.slice(-n).join("\n"),
    logs: () =>
      stdout.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    isRunning: () => exit === undefined,
    exited(timeoutMs = Infinity) {
      if (exit) return Promise.resolve(exit);
      if (timeoutMs === Infinity) return exitPromise;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} still running after ${timeoutMs} ms\n${proc.output()}`)), timeoutMs);
        void exitPromise.then((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    until(check, what, timeoutMs) {
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(poll);
        };
        const poll = () => {
          const found = check();
          if (found !== undefined) {
            done();
            resolve(found);
          } else if (exit) {
            done();
            reject(new Error(`${name} exited (${JSON.stringify(exit)}) before ${what}\n${proc.output()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: not ${what} after ${timeoutMs} ms\n${proc.output()}`));
        }, timeoutMs);
        waiters.add(poll);
        poll();
      });
    },
    async kill() {
      if (!exit) child.kill("SIGKILL");
      await proc.exited(10_000);
    },
    async stop(graceMs = 5000) {
      const kids = descendants(child.pid!);
      if (!exit) {
        trySignal(child.pid!, "SIGTERM");
        const timer = setTimeout(() => trySignal(child.pid!, "SIGKILL"), graceMs);
        await exitPromise;
        clearTimeout(timer);
      }
      for (const k of kids) if (existsSync(`/proc/${k}`)) trySignal(k, "SIGKILL");
    },
  };
  live.add(proc);
  opts.group?.add(proc);
  return proc;
}

/** SIGKILL every child in `group` still alive, wait for them to exit (10 s at most each), forget them. */
export async function killAll(group: Set<NodeChild>): Promise<void> {
  const children = [...group];
  await Promise.all(children.map((c) => c.kill().catch(() => undefined)));
  group.clear();
}

const issuers = new Set<NodeChild>();

export interface IssuerProcess extends NodeChild {
  /** resolves with the port from "Tessera listening on http://HOST:PORT"; rejects on exit or timeout */
  listening(timeoutMs?: number): Promise<{ host: string; port: number; baseUrl: string }>;
}

export interface IssuerSpawnOptions extends Pick<SpawnOptions, "bounded"> {
  /** node arguments that start the server; default `--import tsx src/server.ts` */
  args?: string[];
  name?: string;
}

/** The issuer with `env` (over baseEnv()). */
export function spawnIssuer(env: Record<string, string>, opts: IssuerSpawnOptions = {}): IssuerProcess {
  const proc = spawnNode(opts.name ?? "issuer", opts.args ?? ["--import", "tsx", "src/server.ts"], {
    env: { ...baseEnv(), ...env },
    group: issuers,
    bounded: opts.bounded,
  });
  return Object.assign(proc, {
    listening: (timeoutMs = 60_000) =>
      proc.until(
        () => {
          for (const line of proc.stdout) {
            const m = /Tessera listening on http:\/\/([^\s:]+):(\d+)/.exec(line);
            if (m) return { host: m[1]!, port: Number(m[2]), baseUrl: `http://${m[1]!}:${m[2]!}` };
          }
          return undefined;
        },
        "listening",
        timeoutMs,
      ),
  });
}

/** SIGKILL every issuer still running (afterEach/afterAll). */
export function killAllIssuers(): Promise<void> {
  return killAll(issuers);
}

/** Polls `url` until it answers 200; fails early if `child` exits. */
export async function waitReady(url: string, child: NodeChild, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (!child.isRunning()) throw new Error(`${child.name} exited before it was ready:\n${child.tail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} not ready after ${timeoutMs} ms (${last}):\n${child.tail()}`);
}

function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** All descendants of pid (children first-level and below), from /proc; none where there is no /proc. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tasks) {
      let kids: string;
      try {
        kids = readFileSync(`/proc/${p}/task/${tid}/children`, "utf8");
      } catch {
        continue;
      }
      for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

/** Rejects when `promise` does not settle within `ms`: "does not hang", not a performance bound. */
export function within<T>(ms: number, promise: Promise<T>, what = "operation"): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The server side of TCP port `port` as the kernel sees it (Linux /proc/net/tcp{,6}): the
 * listener's accept queue length and, per accepted connection, the bytes not yet read by the
 * process. null where /proc/net/tcp does not exist.
 */
export function serverSideOf(port: number): { acceptQueue: number; connections: number; unread: number } | null {
  let seen = false;
  let acceptQueue = 0;
  let connections = 0;
  let unread = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    seen = true;
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...
      const cols = line.trim().split(/\s+/);
      if (cols.length < 5 || parseInt(cols[1]!.split(":")[1]!, 16) !== port) continue;
      const rx = parseInt(cols[4]!.split(":")[1]!, 16);
      if (cols[3] === "0A") acceptQueue += rx; // LISTEN: rx_queue is the accept backlog
      else if (cols[3] === "01") {
        connections++; // ESTABLISHED, server side
        unread += rx;
      }
    }
  }
  return seen ? { acceptQueue, connections, unread } : null;
}

/**
 * Call after every request has been fully written to the socket: waits until the server process
 * has accepted every pending connection on `port` and read every byte sent on them, i.e. the
 * requests are in its HTTP parser (in flight or answered), none waits in a kernel queue.
 * Without /proc/net/tcp it falls back to a fixed pause.
 */
export async function untilServerHasRead(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const samples: string[] = [];
  for (;;) {
    const s = serverSideOf(port);
    if (!s) return new Promise((r) => setTimeout(r, 250));
    if (s.acceptQueue === 0 && s.unread === 0) return;
    if (samples.at(-1) !== JSON.stringify(s)) samples.push(JSON.stringify(s));
    if (Date.now() > deadline) throw new Error(`server on port ${port} has not read its requests: ${samples.join(" ")}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
