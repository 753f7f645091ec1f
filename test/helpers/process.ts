// The issuer as a real child process (`node --import tsx src/server.ts`), for what app.inject()
// cannot show: the listen socket, signals, exit codes, migrations and files on first start.
// Every child is tracked; killAllIssuers() in afterEach/afterAll leaves nothing running.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const running = new Set<ChildProcess>();
// Last resort if the test process goes away without its hooks running: no orphaned servers.
process.once("exit", () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface IssuerProcess {
  child: ChildProcess;
  pid: number;
  /** stdout lines (pino JSON) so far */
  readonly stdout: string[];
  readonly stderr: string;
  /** every line of both streams, for failure messages */
  output(): string;
  /** parsed stdout lines that are JSON */
  logs(): Record<string, unknown>[];
  /** resolves with the port from "Tessera listening on http://HOST:PORT"; rejects on exit or timeout */
  listening(timeoutMs?: number): Promise<{ host: string; port: number; baseUrl: string }>;
  /** resolves when the process has exited; rejects after timeoutMs */
  exited(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL if still running, then wait for the exit */
  kill(): Promise<void>;
}

/** Only what the server needs from the parent environment; the rest is explicit. */
function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "TMPDIR", "LANG", "SYSTEMROOT"];
  const env: Record<string, string> = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

export function spawnIssuer(env: Record<string, string>): IssuerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: ROOT,
    env: { ...baseEnv(), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  const stdout: string[] = [];
  let stderr = "";
  let partial = "";
  const lineWaiters = new Set<() => void>();
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    stdout.push(...parts.filter(Boolean));
    for (const w of lineWaiters) w();
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk;
  });
  let exit: Exit | undefined;
  const exitPromise = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      if (partial) stdout.push(partial);
      partial = "";
      exit = { code, signal };
      running.delete(child);
      for (const w of lineWaiters) w();
      resolve(exit);
    });
  });

  const proc: IssuerProcess = {
    child,
    pid: child.pid!,
    stdout,
    get stderr() {
      return stderr;
    },
    output() {
      return `--- stdout ---\n${stdout.join("\n")}\n--- stderr ---\n${stderr}`;
    },
    logs() {
      return stdout.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
    },
    listening(timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of stdout) {
            const m = /Tessera listening on http:\/\/([^\s:]+):(\d+)/.exec(line);
            if (m) {
              done();
              const host = m[1]!;
              const port = Number(m[2]);
              return resolve({ host, port, baseUrl: `http://${host}:${port}` });
            }
          }
          if (exit) {
            done();
            reject(new Error(`issuer exited (${JSON.stringify(exit)}) before listening\n${proc.output()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`issuer not listening after ${timeoutMs} ms\n${proc.output()}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          lineWaiters.delete(check);
        };
        lineWaiters.add(check);
        check();
      });
    },
    exited(timeoutMs = 30_000) {
      if (exit) return Promise.resolve(exit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`issuer still running after ${timeoutMs} ms\n${proc.output()}`)), timeoutMs);
        void exitPromise.then((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    async kill() {
      if (!exit) child.kill("SIGKILL");
      await proc.exited(10_000);
    },
  };
  return proc;
}

/** SIGKILL every child in `running` still alive, wait for them to exit, forget them. */
export async function killAll(running: Set<ChildProcess>): Promise<void> {
  const children = [...running];
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(resolve, 10_000);
          c.once("close", () => {
            clearTimeout(t);
            resolve();
          });
        }),
    ),
  );
  running.clear();
}

/** SIGKILL every server child still running (afterEach/afterAll). */
export function killAllIssuers(): Promise<void> {
  return killAll(running);
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
