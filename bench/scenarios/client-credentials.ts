// e. grant_type=client_credentials (client_secret_basic) vs what jose alone signs with the
// issuer's algorithm.
import type autocannon from "autocannon";
import { describeResult, runCli } from "../../test/helpers/cli.ts";
import { loadSlice } from "../lib/load.ts";
import { FORM, post } from "../lib/http.ts";
import { benchEnv, JsonWorker } from "../lib/proc.ts";
import { heading, line } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { Findings, type Scenario } from "./scenario.ts";

const GOAL = 0.5;

/** A confidential client made with the admin CLI, on the server's own database and keys. */
async function createBenchClient(databaseUrl: string, keysDir: string): Promise<{ id: string; secret: string }> {
  const r = await runCli(
    ["clients", "create", "--name", "bench", "--confidential", "--grant-types", "client_credentials", "--scopes", "read", "--json"],
    { ...benchEnv(), DATABASE_URL: databaseUrl, KEYS_DIR: keysDir, MIGRATE_ON_START: "false" },
  );
  if (r.code !== 0) throw new Error(`clients create failed: ${r.stderr || describeResult(r)}`);
  const json = JSON.parse(r.stdout) as { client_id: string; client_secret: string };
  return { id: json.client_id, secret: json.client_secret };
}

export const clientCredentialsScenario: Scenario = {
  key: "client_credentials",
  name: "client_credentials",
  async run({ flavor, server, databaseUrl, keysDir, settings }) {
    const found = new Findings(flavor);
    const { connections } = settings;
    const alg = server.config.signingAlg;
    heading(`[${flavor}] e. client_credentials (client_secret_basic, ${connections} connections) vs jose signing ${alg} alone (${connections} in flight)`);
    const client = await createBenchClient(databaseUrl, keysDir);
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString("base64")}`;
    const headers = { ...FORM, authorization };
    const body = "grant_type=client_credentials&scope=read";
    const check = await post(`${server.base}/oauth/token`, body, headers);
    if (check.status !== 200 || typeof check.json.access_token !== "string") {
      found.fail(`client_credentials: unexpected answer ${check.status} ${JSON.stringify(check.json).slice(0, 200)}`);
      return found;
    }
    const worker = await JsonWorker.start("jose baseline", ["--import", "tsx", "bench/baselines/jose-sign.ts"], {
      ...benchEnv(),
      UV_THREADPOOL_SIZE: settings.uvThreadpoolSize,
      CONCURRENCY: String(connections),
      SIGNING_ALG: alg,
    });
    try {
      const subjectSide: Side = {
        run: (seconds) =>
          loadSlice({
            url: server.base,
            connections,
            seconds,
            graceful: true,
            serverPid: server.child.pid,
            setupClient: (c: autocannon.Client) => c.setRequests([{ method: "POST", path: "/oauth/token", headers, body }]),
          }),
      };
      const { base, subject } = await alternate(worker.side(), subjectSide, settings);
      line(`jose SignJWT ${alg}, concurrent (baseline)`, base.figure());
      line("POST /oauth/token client_credentials", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("jose baseline", base) && found.checkFailures("client_credentials", subject);
      found.ratio("client_credentials", subject.figure(), base.figure(), `jose ${alg} sign`, GOAL, ok);
    } finally {
      await worker.close();
    }
    return found;
  },
};
