// c. Refresh rotation, one chain per connection, vs the same transaction with the raw driver on a
// scratch table (better-sqlite3 WAL/NORMAL; pg Pool 10, 64 in flight); then reuse detection.
import { randomBytes } from "node:crypto";
import path from "node:path";
import type autocannon from "autocannon";
import { loadSlice } from "../lib/load.ts";
import { FORM, limited, login, post, refreshBody, refreshRequest } from "../lib/http.ts";
import { benchEnv, JsonWorker, runDatabase } from "../lib/proc.ts";
import { heading, line, note } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { Findings, type Scenario } from "./scenario.ts";

const GOAL = 0.5;
/** raw pg baseline: pool size and requests in flight */
const PG_BASELINE_POOL = 10;
const PG_BASELINE_CONCURRENCY = 64;

interface Chain {
  token: string;
  /** the last three tokens received, oldest first */
  history: string[];
  rotations: number;
}

export const refreshScenario: Scenario = {
  key: "refresh",
  name: "refresh rotation",
  async run({ flavor, server, users, scratchDir, pgAdminUrl, settings }) {
    const found = new Findings(flavor);
    heading(
      `[${flavor}] c. refresh rotation, ${settings.refreshChains} chains (one per connection) vs raw-driver rotation, ${settings.seconds}s each in ${settings.slices} alternating slices`,
    );
    const t0 = Date.now();
    const chains: Chain[] = await limited(settings.refreshChains, 16, async (i) => {
      const token = await login(server.base, users[i % users.length]!);
      return { token, history: [token], rotations: 0 };
    });
    note(`${chains.length} chains logged in (${((Date.now() - t0) / 1000).toFixed(1)}s)`);

    // Each connection owns one chain and always presents the newest token it was given; the
    // graceful end of each slice means no response (and so no token) is ever lost.
    const statuses = new Map<number, number>();
    const subjectSide: Side = {
      run: (seconds) => {
        let n = 0;
        const setupClient = (client: autocannon.Client) => {
          const chain = chains[n++ % chains.length]!;
          client.setRequests([
            refreshRequest(chain, (status, next) => {
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
              if (next === undefined) return;
              chain.history.push(next);
              if (chain.history.length > 3) chain.history.shift();
              chain.rotations++;
            }),
          ]);
        };
        return loadSlice({ url: server.base, connections: chains.length, seconds, graceful: true, setupClient, serverPid: server.child.pid });
      },
    };

    // Raw driver, same transaction shape, scratch table in a temp database.
    let dropRaw: (() => Promise<void>) | undefined;
    let worker: JsonWorker | undefined;
    try {
      if (flavor === "sqlite") {
        worker = await JsonWorker.start(
          "rotation baseline (sqlite)",
          ["--import", "tsx", "bench/baselines/rotation.ts", "sqlite", path.join(scratchDir, "raw-rotation.db")],
          { ...benchEnv(), CHAINS: String(settings.refreshChains) },
        );
      } else {
        const raw = await runDatabase(pgAdminUrl, `bench_raw_${randomBytes(4).toString("hex")}`);
        dropRaw = raw.drop;
        worker = await JsonWorker.start("rotation baseline (postgres)", ["--import", "tsx", "bench/baselines/rotation.ts", "postgres", raw.url], {
          ...benchEnv(),
          CONCURRENCY: String(PG_BASELINE_CONCURRENCY),
          POOL: String(PG_BASELINE_POOL),
        });
      }
      const { base, subject } = await alternate(worker.side(), subjectSide, settings);
      const baseName =
        flavor === "sqlite" ? "better-sqlite3 WAL/NORMAL, 1 loop" : `pg Pool ${PG_BASELINE_POOL}, ${PG_BASELINE_CONCURRENCY} in flight`;
      line(`raw rotation (baseline: ${flavor === "sqlite" ? "better-sqlite3" : "pg"})`, base.figure());
      line("POST /oauth/token refresh_token", subject.figure(), subject.failed ? subject.statusText() : "");
      const rotations = chains.map((c) => c.rotations).sort((a, b) => a - b);
      const rejected = statuses.get(400) ?? 0;
      note(
        `rotations per chain (incl. warm-up): min ${rotations[0]}, median ${rotations[Math.floor(rotations.length / 2)]}, max ${rotations[rotations.length - 1]}; ` +
          `400 responses: ${rejected}`,
      );
      let ok = found.checkFailures("raw rotation baseline", base) && found.checkFailures("refresh rotation", subject);
      if (rejected > 0) {
        found.fail(`refresh rotation: ${rejected} responses were 400 (a chain presented a stale token or was revoked)`);
        ok = false;
      }
      if (rotations[0] === 0) {
        found.fail("refresh rotation: a chain never rotated");
        ok = false;
      }

      // Reuse detection after the run: an already-rotated token two generations back (its
      // successor is itself consumed, so no grace applies) must be refused and must revoke the
      // session, so the newest token of that session is refused too.
      const chain = [...chains].sort((x, y) => y.history.length - x.history.length)[0]!;
      let reuseOk = false;
      let reuseText = "not checked (no chain rotated twice)";
      if (chain.history.length >= 3) {
        const stale = await post(`${server.base}/oauth/token`, refreshBody(chain.history[0]!), FORM);
        const latest = await post(`${server.base}/oauth/token`, refreshBody(chain.history[2]!), FORM);
        reuseOk =
          stale.status === 400 && stale.json.error === "invalid_grant" && latest.status === 400 && latest.json.error === "invalid_grant";
        reuseText =
          `rotated token -> ${stale.status} ${String(stale.json.error)}; ` +
          `newest token of that session -> ${latest.status} ${String(latest.json.error)}`;
      }
      note(`reuse detection: ${reuseText} (expected 400 invalid_grant twice): ${reuseOk ? "ok" : "FAILED"}`);
      if (!reuseOk) found.fail(`reuse detection not intact: ${reuseText}`);
      found.ratio("refresh rotation", subject.figure(), base.figure(), baseName, GOAL, ok);
      found.row({
        scenario: "reuse detection",
        figure: reuseOk ? "400 invalid_grant" : "wrong answer",
        baseline: "-",
        ratio: null,
        goal: "400 + session revoked",
        status: reuseOk ? "met" : "FAILED",
      });
    } finally {
      await worker?.close();
      await dropRaw?.();
    }
    return found;
  },
};
