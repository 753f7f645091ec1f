// a. GET /.well-known/jwks.json vs a Fastify "hello world" in its own process.
import { freePort } from "../../test/helpers/ports.ts";
import { spawnNode, waitReady } from "../../test/helpers/process.ts";
import { loadSlice } from "../lib/load.ts";
import { benchEnv } from "../lib/proc.ts";
import { heading, line } from "../lib/report.ts";
import { alternate, type Side } from "../lib/slices.ts";
import { Findings, type Scenario } from "./scenario.ts";

const GOAL = 0.9;

/** The Fastify hello world (bench/baselines/hello-server.ts) in a process of its own, ready. */
export async function startHello() {
  const port = await freePort();
  const child = spawnNode("hello-world", ["--import", "tsx", "bench/baselines/hello-server.ts"], { env: { ...benchEnv(), PORT: String(port) } });
  const url = `http://127.0.0.1:${port}/`;
  await waitReady(url, child, 60_000);
  return { child, url };
}

export const jwksScenario: Scenario = {
  key: "jwks",
  name: "JWKS",
  async run({ flavor, server, settings }) {
    const found = new Findings(flavor);
    const { connections } = settings;
    heading(`[${flavor}] a. JWKS vs Fastify hello world (${connections} connections, ${settings.seconds}s each in ${settings.slices} alternating slices)`);
    const jwksUrl = `${server.base}/.well-known/jwks.json`;
    const check = await fetch(jwksUrl);
    const jwks = (await check.json()) as { keys?: unknown[] };
    if (check.status !== 200 || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
      found.fail(`JWKS: unexpected answer ${check.status} ${JSON.stringify(jwks).slice(0, 200)}`);
      return found;
    }
    const hello = await startHello();
    try {
      const side = (url: string, pid: number): Side => ({
        run: (seconds) => loadSlice({ url, connections, seconds, graceful: true, serverPid: pid }),
      });
      const { base, subject } = await alternate(side(hello.url, hello.child.pid), side(jwksUrl, server.child.pid), settings);
      line("fastify hello world (baseline)", base.figure());
      line("GET /.well-known/jwks.json", subject.figure());
      const ok = found.checkFailures("hello world", base) && found.checkFailures("JWKS", subject);
      found.ratio("JWKS GET", subject.figure(), base.figure(), "hello world", GOAL, ok);
    } finally {
      await hello.child.stop();
    }
    return found;
  },
};
