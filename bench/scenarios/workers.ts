// f. client_credentials with WORKERS=1 vs WORKERS=N (node:cluster), same database, same keys,
// same load, alternating slices. Two servers of their own, both at LOG_LEVEL=info (the default;
// the cluster's "listening with N workers" line is how the bench knows every worker is up before
// the load's connections are made, since the primary hands each connection to a worker once).
// Reported, no goal: on a machine with few cores the load generator competes with the workers
// for them, so N workers cannot reach N times one.
import os from "node:os";
import { FORM, post } from "../lib/http.ts";
import { heading, line, note } from "../lib/report.ts";
import { alternate } from "../lib/slices.ts";
import { createBenchClient, postSide } from "./client-credentials.ts";
import { Findings, type Scenario, type Server } from "./scenario.ts";

export const workersScenario: Scenario = {
  key: "workers",
  name: "workers",
  async run({ flavor, databaseUrl, keysDir, settings, startServer }) {
    const found = new Findings(flavor);
    const n = Number(process.env.BENCH_WORKERS || os.availableParallelism());
    const { connections } = settings;
    heading(`[${flavor}] f. client_credentials, WORKERS=1 vs WORKERS=${n} (${connections} connections; ${os.availableParallelism()} cores shared with the load generator)`);
    const client = await createBenchClient(databaseUrl, keysDir);
    const headers = { ...FORM, authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString("base64")}` };
    const body = "grant_type=client_credentials&scope=read";
    const servers: Server[] = [];
    try {
      const one = await startServer({ WORKERS: "1", LOG_LEVEL: "info" });
      servers.push(one);
      const many = await startServer({ WORKERS: String(n), LOG_LEVEL: "info" });
      servers.push(many);
      await many.child.until(() => (many.child.stdout.some((l) => l.includes(`with ${n} workers`)) ? true : undefined), `${n} workers listening`, 120_000);
      for (const s of servers) {
        const check = await post(`${s.base}/oauth/token`, body, headers);
        if (check.status !== 200) throw new Error(`client_credentials: unexpected answer ${check.status} ${JSON.stringify(check.json).slice(0, 200)}`);
      }
      const { base, subject } = await alternate(
        postSide(one.base, one.child.pid, connections, "/oauth/token", headers, body),
        postSide(many.base, many.child.pid, connections, "/oauth/token", headers, body),
        settings,
      );
      line("WORKERS=1 POST /oauth/token client_credentials", base.figure());
      line(`WORKERS=${n} POST /oauth/token client_credentials`, subject.figure(), subject.failed ? subject.statusText() : "");
      note("cpu/op of the cluster counts the primary and every worker");
      const ok = found.checkFailures("WORKERS=1", base) && found.checkFailures(`WORKERS=${n}`, subject);
      const ratio = base.figure().rps > 0 ? subject.figure().rps / base.figure().rps : null;
      found.row({
        scenario: `client_credentials, WORKERS=${n} vs 1`,
        figure: `${Math.round(subject.figure().rps)}/s`,
        baseline: `${Math.round(base.figure().rps)}/s WORKERS=1`,
        ratio,
        goal: "- (reported)",
        status: ok ? "info" : "FAILED",
        measured: { subject: subject.figure(), baseline: base.figure() },
      });
    } catch (err) {
      found.fail(`workers: ${(err as Error).message}`);
      found.notRun(`client_credentials, WORKERS=${n} vs 1`);
    } finally {
      for (const s of servers) await s.child.stop();
    }
    return found;
  },
};
