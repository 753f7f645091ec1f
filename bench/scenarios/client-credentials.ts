// e. grant_type=client_credentials (client_secret_basic) vs what jose alone signs with the
// issuer's algorithm; vs the least an HTTP token endpoint does on the same stack (Fastify, form
// body, jose: bench/baselines/hello-server.ts POST /token), reported; and vs node-oidc-provider 9.
import { randomBytes } from "node:crypto";
import type autocannon from "autocannon";
import { describeResult, runCli } from "../../test/helpers/cli.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { spawnNode, waitReady } from "../../test/helpers/process.ts";
import { loadSlice } from "../lib/load.ts";
import { FORM, post } from "../lib/http.ts";
import { benchEnv, JsonWorker } from "../lib/proc.ts";
import { heading, line } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { Findings, type Scenario } from "./scenario.ts";

const GOAL = 0.6;
/** Tessera's client_credentials throughput over node-oidc-provider's, same machine, same load. */
const PEER_GOAL = 3;

/** One side of a comparison: `connections` clients POSTing `body` to `base + path`. */
export const postSide = (base: string, pid: number, connections: number, path: string, headers: Record<string, string>, body: string): Side => ({
  run: (seconds) =>
    loadSlice({
      url: base,
      connections,
      seconds,
      graceful: true,
      serverPid: pid,
      setupClient: (c: autocannon.Client) => c.setRequests([{ method: "POST", path, headers, body }]),
    }),
});

/** node-oidc-provider 9 in its own process (bench/baselines/oidc-provider-server.ts). */
async function startPeer(alg: string): Promise<{ child: ReturnType<typeof spawnNode>; base: string; authorization: string }> {
  const port = await freePort();
  const secret = randomBytes(32).toString("base64url");
  const child = spawnNode("node-oidc-provider", ["--import", "tsx", "bench/baselines/oidc-provider-server.ts"], {
    env: { ...benchEnv(), PORT: String(port), CLIENT_SECRET: secret, SIGNING_ALG: alg, NODE_ENV: "production" },
  });
  const base = `http://127.0.0.1:${port}`;
  const authorization = `Basic ${Buffer.from(`bench:${secret}`).toString("base64")}`;
  // Ready when it issues a token (its discovery document answers before the client is usable).
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await post(`${base}/token`, "grant_type=client_credentials&scope=read", { ...FORM, authorization });
      if (r.status === 200 && typeof r.json.access_token === "string") return { child, base, authorization };
      throw new Error(`node-oidc-provider answered ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
    } catch (err) {
      if (!child.isRunning() || Date.now() > deadline) {
        await child.stop();
        throw new Error(`node-oidc-provider did not start: ${(err as Error).message}\n${child.tail()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Fastify + form body + jose signing, nothing else (the ceiling of an HTTP issuer on this stack);
 * with `env` ARGON2_*, also POST /login, which verifies an argon2id password first.
 */
export async function startCeiling(alg: string, env: Record<string, string> = {}): Promise<{ child: ReturnType<typeof spawnNode>; base: string }> {
  const port = await freePort();
  const child = spawnNode("fastify+jose", ["--import", "tsx", "bench/baselines/hello-server.ts"], { env: { ...benchEnv(), ...env, PORT: String(port), SIGNING_ALG: alg } });
  const base = `http://127.0.0.1:${port}`;
  await waitReady(`${base}/`, child, 60_000);
  return { child, base };
}

/** A confidential client made with the admin CLI, on the server's own database and keys. */
export async function createBenchClient(databaseUrl: string, keysDir: string): Promise<{ id: string; secret: string }> {
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
      const subjectSide = postSide(server.base, server.child.pid, connections, "/oauth/token", headers, body);
      const { base, subject } = await alternate(worker.side(), subjectSide, settings);
      line(`jose SignJWT ${alg}, concurrent (baseline)`, base.figure());
      line("POST /oauth/token client_credentials", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("jose baseline", base) && found.checkFailures("client_credentials", subject);
      found.ratio("client_credentials", subject.figure(), base.figure(), `jose ${alg} sign`, GOAL, ok);
    } finally {
      await worker.close();
    }

    // The ceiling: HTTP and signing and nothing else, same load.
    heading(`[${flavor}] e1. client_credentials vs Fastify + form body + jose ${alg} (no client authentication, no store; ${connections} connections)`);
    const ceiling = await startCeiling(alg);
    try {
      const ceilingSide = postSide(ceiling.base, ceiling.child.pid, connections, "/token", FORM, body);
      const subjectSide = postSide(server.base, server.child.pid, connections, "/oauth/token", headers, body);
      const { base, subject } = await alternate(ceilingSide, subjectSide, settings);
      line(`Fastify + jose ${alg} POST /token (ceiling)`, base.figure());
      line("Tessera POST /oauth/token client_credentials", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("Fastify + jose", base) && found.checkFailures("client_credentials", subject);
      found.reported("client_credentials vs Fastify + jose", subject.figure(), base.figure(), `Fastify + jose ${alg}`, ok);
    } finally {
      await ceiling.child.stop();
    }

    // The peer: node-oidc-provider under the same load (its in-memory adapter; no database).
    heading(`[${flavor}] e2. client_credentials: Tessera vs node-oidc-provider 9 (same client auth, ${alg} JWT access tokens, ${connections} connections)`);
    let peer: Awaited<ReturnType<typeof startPeer>>;
    try {
      peer = await startPeer(alg);
    } catch (err) {
      found.fail((err as Error).message);
      found.notRun("client_credentials vs node-oidc-provider");
      return found;
    }
    try {
      const peerSide = postSide(peer.base, peer.child.pid, connections, "/token", { ...FORM, authorization: peer.authorization }, "grant_type=client_credentials&scope=read");
      const subjectSide = postSide(server.base, server.child.pid, connections, "/oauth/token", headers, body);
      const { base, subject } = await alternate(peerSide, subjectSide, settings);
      line("node-oidc-provider 9 POST /token (peer)", base.figure());
      line("Tessera POST /oauth/token client_credentials", subject.figure(), subject.failed ? subject.statusText() : "");
      const ok = found.checkFailures("node-oidc-provider", base) && found.checkFailures("client_credentials", subject);
      found.ratio("client_credentials vs node-oidc-provider", subject.figure(), base.figure(), "node-oidc-provider 9", PEER_GOAL, ok);
    } finally {
      await peer.child.stop();
    }
    return found;
  },
};
