// Cleanup, baseline workers and process measurements for the benchmark. The children themselves
// (spawning, tracking, stopping) are test/helpers/process.ts's; here every child still running
// is stopped on exit, on a signal or on a crash, every temp dir is removed, and async cleanups
// (dropping databases) run in reverse registration order.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createPgDatabase, type TempDatabase } from "../../test/helpers/databases.ts";
import { baseEnv, descendants, liveChildren, spawnNode, type NodeChild } from "../../test/helpers/process.ts";
import type { Side, Slice } from "./slices.ts";

const tempDirs = new Set<string>();
const cleanups: Array<{ name: string; fn: () => Promise<void> | void }> = [];

/** What a bench child gets from our environment (NODE_OPTIONS too); the rest is explicit. */
export const benchEnv = (): Record<string, string> => baseEnv(["NODE_OPTIONS"]);

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
  for (const child of liveChildren()) await child.stop();
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

// Last line of defence (process.exit from anywhere, a crash): synchronous removals (the children
// are killed by test/helpers/process.ts's own exit hook).
process.on("exit", () => {
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

/** A new Postgres database for this run: `drop` drops it, runCleanups() at the latest. */
export async function runDatabase(adminUrl: string, name: string): Promise<TempDatabase> {
  const db = await createPgDatabase(adminUrl, name);
  return { url: db.url, drop: onCleanup(`DROP DATABASE ${name}`, db.drop) };
}

/**
 * A long-lived child that answers commands on stdin with one JSON line each on stdout
 * (see serveSlices in slices.ts): lets a baseline run in slices between the subject's.
 */
export class JsonWorker {
  readonly #child: NodeChild;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;

  private constructor(name: string, args: string[], env: Record<string, string>) {
    this.#child = spawnNode(name, args, {
      env,
      stdin: true,
      bounded: true,
      onLine: (l) => {
        if (!l.trim().startsWith("{")) return;
        this.#lines.push(l);
        this.#waiter?.();
      },
    });
    void this.#child.exited().then(() => this.#waiter?.());
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

  /** This worker as the baseline side of a comparison: each slice is a `run <seconds>` command. */
  side(): Side {
    return { run: (seconds) => this.command<Slice>(`run ${seconds}`, (seconds + 60) * 1000) };
  }

  async close(): Promise<void> {
    if (this.#child.isRunning()) {
      this.#child.child.stdin!.end("exit\n");
      const timer = setTimeout(() => void this.#child.stop(), 10_000);
      await this.#child.exited();
      clearTimeout(timer);
    }
  }
}

// ---- CPU and memory of a process, from /proc ----

let clockTicks: number | undefined;

/**
 * utime + stime of a process (all its threads) and of its live descendants (a WORKERS > 1
 * server's workers), ms; NaN if it is gone.
 */
export function cpuTimeMs(pid: number): number {
  return descendants(pid).reduce((sum, child) => sum + (ownCpuTimeMs(child) || 0), ownCpuTimeMs(pid));
}

function ownCpuTimeMs(pid: number): number {
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
