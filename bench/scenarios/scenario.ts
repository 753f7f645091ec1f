// The contract every benchmark scenario implements (one file per scenario, run in the order of
// the registry in index.ts): it gets the server under test on one database and the run's
// settings, prints its measurements as it goes, and returns its summary rows and failures.
import type { Config } from "../../src/config.ts";
import type { NodeChild } from "../../test/helpers/process.ts";
import { fmtRate, type Figure, type Status, type SummaryRow } from "../lib/report.ts";
import type { Accumulator, Plan } from "../lib/slices.ts";

export type Flavor = "sqlite" | "postgres";

/** A scenario fails (it still reports) when more than this share of its operations failed. */
export const MAX_FAILURE_RATE = 0.01;

/** The run's settings (environment, parsed in run.ts). */
export interface Settings extends Plan {
  /** connections for JWKS / hello world / client_credentials */
  connections: number;
  /** connections for the password grant (and the argon2 baseline's concurrency) */
  loginConnections: number;
  /** refresh chains = connections */
  refreshChains: number;
  floodConnections: number;
  floodSeconds: number;
  /** given to Tessera and to the baselines alike */
  uvThreadpoolSize: string;
}

/** Tessera as a child process, ready. */
export interface Server {
  child: NodeChild;
  base: string;
  config: Config;
}

export interface ScenarioContext {
  flavor: Flavor;
  server: Server;
  /** registered users (password = PASSWORD in lib/http.ts) */
  users: string[];
  /** the server's database and keys, for the admin CLI */
  databaseUrl: string;
  keysDir: string;
  /** a temp directory of this database's run */
  scratchDir: string;
  /** Postgres admin URL ("" without Postgres) */
  pgAdminUrl: string;
  settings: Settings;
  /** another Tessera on the same database and keys, with `env` over the run's (stopped by the caller) */
  startServer(env: Record<string, string>): Promise<Server>;
}

export interface ScenarioResult {
  rows: SummaryRow[];
  failures: string[];
}

export interface Scenario {
  /** its name in BENCH_SCENARIOS */
  key: string;
  /** its name in messages */
  name: string;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** A scenario's result as it is built: failures are also printed the moment they are found. */
export class Findings implements ScenarioResult {
  readonly rows: SummaryRow[] = [];
  readonly failures: string[] = [];

  constructor(private readonly flavor: Flavor) {}

  fail(what: string): void {
    this.failures.push(what);
    console.log(`  !! ${what}`);
  }

  row(row: Omit<SummaryRow, "db">): void {
    this.rows.push({ db: this.flavor, ...row });
  }

  /** The row of a scenario that could not run (its failure says why). */
  notRun(scenario: string): void {
    this.row({ scenario, figure: "-", baseline: "-", ratio: null, goal: "-", status: "not run" });
  }

  /** Takes in what a scenario returned. */
  add(result: ScenarioResult): void {
    this.rows.push(...result.rows);
    this.failures.push(...result.failures);
  }

  /** A summary row comparing `subject` with its baseline, and the ratio line under the figures. */
  ratio(scenario: string, subject: Figure, base: Figure, baseName: string, goal: number, ok: boolean): void {
    const ratio = base.rps > 0 ? subject.rps / base.rps : null;
    const status: Status = !ok ? "FAILED" : ratio !== null && ratio >= goal ? "met" : "MISSED";
    this.row({
      scenario,
      figure: `${fmtRate(subject.rps)}/s`,
      baseline: `${fmtRate(base.rps)}/s ${baseName}`,
      ratio,
      goal: `>= ${goal}x`,
      status,
      measured: { subject, baseline: base },
    });
    console.log(`  ratio ${ratio === null ? "n/a" : ratio.toFixed(2)}x (goal >= ${goal}x): ${status}`);
  }

  /** A summary row comparing `subject` with a reference it has no goal against (a ceiling). */
  reported(scenario: string, subject: Figure, base: Figure, baseName: string, ok: boolean): void {
    this.row({
      scenario,
      figure: `${fmtRate(subject.rps)}/s`,
      baseline: `${fmtRate(base.rps)}/s ${baseName}`,
      ratio: base.rps > 0 ? subject.rps / base.rps : null,
      goal: "- (reported)",
      status: ok ? "info" : "FAILED",
      measured: { subject, baseline: base },
    });
  }

  /** Fails the scenario when more than 1% of its operations failed. */
  checkFailures(label: string, acc: Accumulator): boolean {
    const rate = acc.failureRate();
    if (rate > MAX_FAILURE_RATE) {
      this.fail(`${label}: ${(rate * 100).toFixed(2)}% of operations failed (${acc.statusText() || `${acc.failed} failed`})`);
      return false;
    }
    return true;
  }
}
