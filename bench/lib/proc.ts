// Child processes, temp dirs and cleanup for the benchmark. Every child is tracked by pid and
// killed (with its descendants, found through /proc) on exit, on a signal or on a crash; every
// temp dir is removed. Async cleanups (dropping databases) run in reverse registration order.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups: Array<{ name: string; fn: () => Promise<void> | void }> = [];

/**
 * Register an async cleanup (e.g. DROP DATABASE). All pending ones run in reverse order at the
 * end; the returned function runs this one early (and unregisters it).
 */
export function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i < 0) return;
    cleanups.splice(i, 1);
    await fn();
  };
}

export async function runCleanups(): Promise<void> {
  for (const child of [...children]) await stopChild(child);
  while (cleanups.length > 0) {
    const { name, fn } = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`cleanup "${name}" failed: ${(err as Error).message}\n`);
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// Last line of defence (process.exit from anywhere, a crash): synchronous kills and removals.
process.on("exit", () => {
  for (const child of children) {
    if (child.pid !== undefined) for (const pid of [...descendants(child.pid), child.pid]) trySignal(pid, "SIGKILL");
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

let signalled = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (signalled) return;
    signalled = true;
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    void runCleanups().finally(() => process.exit(130));
  });
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** All descendants of pid (children first-level and below), from /proc. */
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

export interface Child {
  name: string;
  child: ChildProcess;
  pid: number;
  /** last lines of stdout+stderr, for failure messages */
  tail(): string;
  /** full stdout (for children that report JSON) */
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  stop(): Promise<void>;
}

/** Only what a child needs from our environment; the rest is explicit. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG", "NODE_OPTIONS"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

export interface SpawnOptions {
  /** keep stdin open (a pipe) for commands */
  stdin?: boolean;
  /** called with every complete stdout line */
  onLine?: (line: string) => void;
}

export function spawnChild(name: string, args: string[], env: Record<string, string>, opts: SpawnOptions = {}): Child {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not spawn ${name}`);
  children.add(child);
  const lines: string[] = [];
  let out = "";
  const keep = (chunk: string) => {
    for (const l of chunk.split("\n")) if (l.trim()) lines.push(l);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => {
    out += c;
    if (out.length > 1_000_000) out = out.slice(-500_000);
    keep(c.length > 2000 ? `${c.slice(0, 2000)}...` : c);
    if (opts.onLine) {
      const parts = (partial + c).split("\n");
      partial = parts.pop() ?? "";
      for (const l of parts) opts.onLine(l);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", keep);
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => {
      running = false;
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    name,
    child,
    pid: child.pid,
    tail: () => lines.slice(-40).join("\n"),
    stdout: () => out,
    exited,
    isRunning: () => running,
    stop: () => stopChild(child),
  };
}

/** SIGTERM (graceful), SIGKILL after 5 s; then SIGKILL any descendant still alive. */
export async function stopChild(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const kids = descendants(pid);
  if (child.exitCode === null && child.signalCode === null) {
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    trySignal(pid, "SIGTERM");
    const timer = setTimeout(() => trySignal(pid, "SIGKILL"), 5000);
    await closed;
    clearTimeout(timer);
  }
  for (const k of kids) if (existsSync(`/proc/${k}`)) trySignal(k, "SIGKILL");
  children.delete(child);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Poll url until it answers 200; fail early if the child exits. */
export async function waitReady(url: string, child: Child, timeoutMs = 90_000): Promise<void> {
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

/**
 * A long-lived child that answers commands on stdin with one JSON line each on stdout
 * (see serveSlices in slices.ts): lets a baseline run in slices between the subject's.
 */
export class JsonWorker {
  readonly #child: Child;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;

  private constructor(name: string, args: string[], env: Record<string, string>) {
    this.#child = spawnChild(name, args, env, {
      stdin: true,
      onLine: (l) => {
        if (!l.trim().startsWith("{")) return;
        this.#lines.push(l);
        this.#waiter?.();
      },
    });
    void this.#child.exited.then(() => this.#waiter?.());
  }

  static async start(name: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<JsonWorker> {
    const w = new JsonWorker(name, args, env);
    const ready = await w.#next<{ ready?: boolean }>(timeoutMs);
    if (!ready.ready) throw new Error(`${name}: unexpected first line ${JSON.stringify(ready)}`);
    return w;
  }

  async #next<T>(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (!this.#child.isRunning()) throw new Error(`${this.#child.name} exited:\n${this.#child.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.#child.name}: no answer within ${timeoutMs} ms:\n${this.#child.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return JSON.parse(this.#lines.shift()!) as T;
  }

  async command<T>(line: string, timeoutMs: number): Promise<T> {
    this.#child.child.stdin!.write(`${line}\n`);
    return this.#next<T>(timeoutMs);
  }

  async close(): Promise<void> {
    if (this.#child.isRunning()) {
      this.#child.child.stdin!.end("exit\n");
      const timer = setTimeout(() => void this.#child.stop(), 10_000);
      await this.#child.exited;
      clearTimeout(timer);
    }
  }
}

// ---- CPU and memory of a process, from /proc ----

let clockTicks: number | undefined;

/** utime + stime of a process (all its threads), ms; NaN if it is gone. */
export function cpuTimeMs(pid: number): number {
  try {
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the ")" that closes the command name; utime and stime are fields 14 and 15
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return NaN;
  }
}


export interface Mem {
  rssKiB: number;
  hwmKiB: number;
}

export function readMem(pid: number): Mem | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const get = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { rssKiB: get("VmRSS"), hwmKiB: get("VmHWM") };
  } catch {
    return null;
  }
}

/** Samples VmRSS every `everyMs` and keeps the maximum. */
export class RssSampler {
  maxKiB = 0;
  samples = 0;
  #timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    everyMs = 50,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }
  #sample(): void {
    const m = readMem(this.pid);
    if (m && Number.isFinite(m.rssKiB)) {
      this.maxKiB = Math.max(this.maxKiB, m.rssKiB);
      this.samples++;
    }
  }
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.maxKiB;
  }
}
