// Printing: one line per measurement, and the final summary table.

/** What a baseline child prints (one JSON line) and what a measurement boils down to. */
export interface Figure {
  /** operations (or requests) per second, mean over the run */
  rps: number;
  /** latency percentiles, ms */
  p50: number;
  p99: number;
  /** completed operations */
  ops: number;
  /** failed operations: errors + non-2xx for HTTP */
  failed: number;
  /** CPU time of the measured process (all threads) per completed operation, ms */
  cpuPerOp?: number;
}

/** q in [0,1] of an ascending-sorted array (nearest rank). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export const fmtRate = (n: number) => (Number.isFinite(n) ? (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1)) : "n/a");
/** autocannon reports whole milliseconds; the baselines measure fractions */
export const fmtMs = (n: number) =>
  !Number.isFinite(n) ? "n/a" : Number.isInteger(n) || n >= 100 ? n.toFixed(0) : n.toFixed(n >= 10 ? 1 : n >= 0.1 ? 2 : 3);
export const fmtMiB = (kib: number) => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : "n/a");
export const fmtRatio = (r: number | null) => (r === null || !Number.isFinite(r) ? "n/a" : `${r.toFixed(2)}x`);

export function line(label: string, f: Figure, extra = ""): void {
  const cols = [
    label.padEnd(34),
    `${fmtRate(f.rps).padStart(9)} req/s`,
    `p50 ${fmtMs(f.p50).padStart(6)} ms`,
    `p99 ${fmtMs(f.p99).padStart(6)} ms`,
    `errors/non-2xx ${String(f.failed).padStart(5)} of ${String(f.ops + f.failed).padEnd(6)}`,
    f.cpuPerOp === undefined ? "" : `cpu/op ${fmtMs(f.cpuPerOp).padStart(5)} ms`,
  ];
  console.log(`  ${cols.join("  ")}${extra ? `  ${extra}` : ""}`);
}

export function note(text: string): void {
  console.log(`  ${text}`);
}

export function heading(text: string): void {
  console.log(`\n== ${text}`);
}

export type Status = "met" | "MISSED" | "FAILED" | "info" | "not run";

export interface SummaryRow {
  db: string;
  scenario: string;
  figure: string;
  baseline: string;
  ratio: number | null;
  goal: string;
  status: Status;
  /** the measured figures behind a ratio (in --json output) */
  measured?: { subject: Figure; baseline: Figure };
}

export function table(rows: SummaryRow[]): string {
  const head = ["db", "scenario", "figure", "baseline", "ratio", "goal", "status"];
  const body = rows.map((r) => [r.db, r.scenario, r.figure, r.baseline, fmtRatio(r.ratio), r.goal, r.status]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  const sep = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [fmt(head), sep, ...body.map(fmt)].join("\n");
}
