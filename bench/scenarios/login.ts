// b. The password grant vs raw argon2id verifications with the same parameters and pool size;
// b1. vs the least an HTTP password grant does on this stack (Fastify, form body, argon2id
// verify, jose signing: bench/baselines/hello-server.ts POST /login), reported.
import type autocannon from "autocannon";
import { loadSlice } from "../lib/load.ts";
import { FORM, login, passwordBody, post } from "../lib/http.ts";
import { benchEnv, JsonWorker } from "../lib/proc.ts";
import { heading, line, note } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { startCeiling } from "./client-credentials.ts";
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
    // Each connection logs in one of the users, in turn.
    let n = 0;
    const setupFor = (path: string) => (client: autocannon.Client) => {
      const email = users[n++ % users.length]!;
      client.setRequests([{ method: "POST", path, headers: FORM, body: passwordBody(email) }]);
    };
    const worker = await JsonWorker.start("argon2 baseline", ["--import", "tsx", "bench/baselines/argon2.ts"], {
      ...benchEnv(),
      UV_THREADPOOL_SIZE: settings.uvThreadpoolSize,
      CONCURRENCY: String(connections),
      ARGON2_MEMORY_KIB: String(argon2.memoryCost),
      ARGON2_ITERATIONS: String(argon2.timeCost),
      ARGON2_PARALLELISM: String(argon2.parallelism),
    });
    try {
      const subjectSide: Side = {
        run: (seconds) => loadSlice({ url: server.base, connections, seconds, graceful: true, setupClient: setupFor("/oauth/token"), serverPid: server.child.pid }),
      };
      const { base, subject } = await alternate(worker.side(), subjectSide, settings);
      line("argon2id verify, raw (baseline)", base.figure());
      line("POST /oauth/token password", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("argon2 baseline", base) && found.checkFailures("password grant", subject);
      found.ratio("password grant", subject.figure(), base.figure(), "argon2id verify", GOAL, ok);
    } finally {
      await worker.close();
    }

    // The ceiling: HTTP, the hash and the signature, and nothing else (no store, no throttle,
    // no refresh token, no audit), same load.
    const alg = server.config.signingAlg;
    heading(`[${flavor}] b1. password grant vs Fastify + form body + argon2id verify + jose ${alg} (no store; ${connections} connections)`);
    const ceiling = await startCeiling(alg, {
      UV_THREADPOOL_SIZE: settings.uvThreadpoolSize,
      ARGON2_MEMORY_KIB: String(argon2.memoryCost),
      ARGON2_ITERATIONS: String(argon2.timeCost),
      ARGON2_PARALLELISM: String(argon2.parallelism),
    });
    try {
      const check = await post(`${ceiling.base}/login`, passwordBody(users[0]!), FORM);
      if (check.status !== 200 || typeof check.json.access_token !== "string") throw new Error(`the ceiling's /login answered ${check.status}`);
      const sideFor = (base: string, pid: number, path: string): Side => ({
        run: (seconds) => loadSlice({ url: base, connections, seconds, graceful: true, setupClient: setupFor(path), serverPid: pid }),
      });
      const { base, subject } = await alternate(sideFor(ceiling.base, ceiling.child.pid, "/login"), sideFor(server.base, server.child.pid, "/oauth/token"), settings);
      line(`Fastify + argon2id + jose ${alg} POST /login (ceiling)`, base.figure());
      line("Tessera POST /oauth/token password", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("Fastify + argon2id", base) && found.checkFailures("password grant", subject);
      found.reported("password grant vs Fastify + argon2id", subject.figure(), base.figure(), "Fastify + argon2id + jose", ok);
    } finally {
      await ceiling.child.stop();
    }
    return found;
  },
};
