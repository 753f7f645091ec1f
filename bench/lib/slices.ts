// Measurements are taken in slices that alternate between the subject and its baseline, so a
// change in background load (other jobs on a 2-core machine) hits both sides alike.
//
// A slice counts only what completed inside its window: rate = completions / window. Work
// still in flight at the end of the window is finished (graceful stop) but not counted, so
// the next slice starts on an idle system.
import { createInterface } from "node:readline";
import { percentile, type Figure } from "./report.ts";

export interface Slice {
  /** measured window, seconds */
  window: number;
  /** successful operations completed inside the window */
  ok: number;
  /** failed operations inside the window (non-2xx, socket errors, timeouts, driver errors) */
  failed: number;
  /** latencies (ms) of the operations completed inside the window */
  latencies: number[];
  /** HTTP status counts inside the window (HTTP slices only) */
  statusCodes?: Record<string, number>;
  errors?: number;
  timeouts?: number;
  /** operations completed in all, including those finished after the window */
  completed?: number;
  /** CPU time (user + system, all threads) the measured process spent on the slice, ms */
  cpuMs?: number;
}

export class Accumulator {
  window = 0;
  ok = 0;
  failed = 0;
  errors = 0;
  timeouts = 0;
  latencies: number[] = [];
  statusCodes: Record<string, number> = {};
  cpuMs = 0;
  /** completions over the slices that measured CPU */
  cpuOps = 0;

  add(s: Slice): void {
    if (s.cpuMs !== undefined) {
      this.cpuMs += s.cpuMs;
      this.cpuOps += s.completed ?? s.ok + s.failed;
    }
    this.window += s.window;
    this.ok += s.ok;
    this.failed += s.failed;
    this.errors += s.errors ?? 0;
    this.timeouts += s.timeouts ?? 0;
    for (const l of s.latencies) this.latencies.push(l);
    for (const [code, n] of Object.entries(s.statusCodes ?? {})) this.statusCodes[code] = (this.statusCodes[code] ?? 0) + n;
  }

  figure(): Figure {
    const sorted = Float64Array.from(this.latencies).sort();
    return {
      rps: this.window > 0 ? this.ok / this.window : NaN,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      ops: this.ok,
      failed: this.failed,
      cpuPerOp: this.cpuOps > 0 ? this.cpuMs / this.cpuOps : undefined,
    };
  }

  failureRate(): number {
    const all = this.ok + this.failed;
    return all === 0 ? 1 : this.failed / all;
  }

  statusText(): string {
    const parts = Object.entries(this.statusCodes).map(([code, n]) => `${code}:${n}`);
    if (this.timeouts) parts.push(`timeouts:${this.timeouts}`);
    if (this.errors - this.timeouts) parts.push(`socket-errors:${this.errors - this.timeouts}`);
    return parts.join(" ");
  }
}

/** How a comparison is measured. */
export interface Plan {
  /** measured seconds per side */
  seconds: number;
  /** ...taken in this many alternating slices */
  slices: number;
  /** warm-up seconds per side before the first slice (0 = none) */
  warmup: number;
}

/** One side of a comparison: runs a measurement slice of the given length. */
export interface Side {
  run(seconds: number): Promise<Slice>;
}

/**
 * Warm both sides up, then measure `seconds` per side in `slices` alternating slices (ABBA
 * order), so a change in background load hits both sides alike.
 */
export async function alternate(base: Side, subject: Side, plan: Plan): Promise<{ base: Accumulator; subject: Accumulator }> {
  if (plan.warmup > 0) {
    await base.run(plan.warmup);
    await subject.run(plan.warmup);
  }
  const per = plan.seconds / plan.slices;
  const acc = { base: new Accumulator(), subject: new Accumulator() };
  for (let i = 0; i < plan.slices; i++) {
    const order = i % 2 === 0 ? (["base", "subject"] as const) : (["subject", "base"] as const);
    for (const k of order) acc[k].add(await (k === "base" ? base : subject).run(per));
  }
  return acc;
}

/**
 * `concurrency` loops calling op() until `seconds` have passed; counts completions inside
 * the window; op() returning false (or throwing) is a failure.
 */
export async function timedLoops(concurrency: number, seconds: number, op: (loop: number) => Promise<boolean> | boolean): Promise<Slice> {
  const latencies: number[] = [];
  let ok = 0;
  let failed = 0;
  let completed = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        let success: boolean;
        try {
          success = await op(loop);
        } catch {
          success = false;
        }
        const t1 = performance.now();
        completed++;
        if (t1 > end) break; // finished after the window: not counted
        if (success) {
          ok++;
          latencies.push(Math.round((t1 - t0) * 1000) / 1000);
        } else {
          failed++;
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { window: seconds, ok, failed, latencies, completed, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * The child side of a baseline worker: after setup, print {"ready":true}; then for each stdin
 * line "run <seconds>" print one Slice as a JSON line; "exit" (or end of input) closes.
 */
export async function serveSlices(run: (seconds: number) => Promise<Slice>, close: () => Promise<void> | void = () => undefined): Promise<void> {
  console.log(JSON.stringify({ ready: true }));
  const rl = createInterface({ input: process.stdin });
  for await (const raw of rl) {
    const [cmd, arg] = raw.trim().split(/\s+/);
    if (cmd === "run") {
      console.log(JSON.stringify(await run(Number(arg))));
    } else if (cmd === "exit") {
      break;
    }
  }
  rl.close();
  await close();
}
