// b. The password grant vs raw argon2id verifications with the same parameters and pool size.
import type autocannon from "autocannon";
import { loadSlice } from "../lib/load.ts";
import { FORM, login, passwordBody } from "../lib/http.ts";
import { benchEnv, JsonWorker } from "../lib/proc.ts";
import { heading, line, note } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { Findings, type Scenario } from "./scenario.ts";

const GOAL = 0.95;

export const loginScenario: Scenario = {
  key: "login",
  name: "password grant",
  async run({ flavor, server, users, settings }) {
    const found = new Findings(flavor);
    const { argon2, passwordHashConcurrency, passwordHashQueue } = server.config;
    const connections = settings.loginConnections;
    heading(
      `[${flavor}] b. password grant vs raw argon2id verify (m=${argon2.memoryCost}, t=${argon2.timeCost}, p=${argon2.parallelism}; ` +
        `${connections} in flight; UV_THREADPOOL_SIZE=${settings.uvThreadpoolSize}; hash concurrency ${passwordHashConcurrency}, queue ${passwordHashQueue})`,
    );
    if (connections > passwordHashConcurrency + passwordHashQueue) {
      note(`warning: ${connections} connections exceed hash concurrency + queue; expect 503s`);
    }
    await login(server.base, users[0]!); // sanity: the grant works before we measure it
    const worker = await JsonWorker.start("argon2 baseline", ["--import", "tsx", "bench/baselines/argon2.ts"], {
      ...benchEnv(),
      UV_THREADPOOL_SIZE: settings.uvThreadpoolSize,
      CONCURRENCY: String(connections),
      ARGON2_MEMORY_KIB: String(argon2.memoryCost),
      ARGON2_ITERATIONS: String(argon2.timeCost),
      ARGON2_PARALLELISM: String(argon2.parallelism),
    });
    try {
      let n = 0;
      const setupClient = (client: autocannon.Client) => {
        const email = users[n++ % users.length]!;
        client.setRequests([{ method: "POST", path: "/oauth/token", headers: FORM, body: passwordBody(email) }]);
      };
      const subjectSide: Side = {
        run: (seconds) => loadSlice({ url: server.base, connections, seconds, graceful: true, setupClient, serverPid: server.child.pid }),
      };
      const { base, subject } = await alternate(worker.side(), subjectSide, settings);
      line("argon2id verify, raw (baseline)", base.figure());
      line("POST /oauth/token password", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("argon2 baseline", base) && found.checkFailures("password grant", subject);
      found.ratio("password grant", subject.figure(), base.figure(), "argon2id verify", GOAL, ok);
    } finally {
      await worker.close();
    }
    return found;
  },
};
