// d. The server's peak RSS so far, then under a login flood: the bounded hash queue answers 503
// instead of letting memory grow with the flood.
import type autocannon from "autocannon";
import { loadSlice } from "../lib/load.ts";
import { FORM, passwordBody, post } from "../lib/http.ts";
import { readMem, RssSampler } from "../lib/proc.ts";
import { fmtMiB, heading, line, note } from "../lib/report.ts";
import { Accumulator } from "../lib/slices.ts";
import { Findings, MAX_FAILURE_RATE, type Scenario } from "./scenario.ts";

export const memoryScenario: Scenario = {
  key: "memory",
  name: "memory",
  async run({ flavor, server, users, settings }) {
    const found = new Findings(flavor);
    const { floodConnections, floodSeconds } = settings;
    const { passwordHashConcurrency, passwordHashQueue, argon2 } = server.config;
    heading(`[${flavor}] d. memory: peak RSS so far, then a login flood (${floodConnections} connections, ${floodSeconds}s)`);
    const before = readMem(server.child.pid);
    if (!before) {
      found.fail("cannot read /proc/<pid>/status of the server");
      return found;
    }
    note(`server pid ${server.child.pid}: VmRSS ${fmtMiB(before.rssKiB)}, peak so far (VmHWM) ${fmtMiB(before.hwmKiB)}`);
    found.row({ scenario: "peak RSS before the flood", figure: fmtMiB(before.hwmKiB), baseline: "-", ratio: null, goal: "report", status: "info" });

    // 503 temporarily_unavailable answers inside the window, and how many connections got one
    let unavailable = 0;
    let connectionsRefused = 0;
    let n = 0;
    const floodEnd = performance.now() + floodSeconds * 1000;
    const setupClient = (client: autocannon.Client) => {
      const email = users[n++ % users.length]!;
      let refused = false;
      client.setRequests([
        {
          method: "POST",
          path: "/oauth/token",
          headers: FORM,
          body: passwordBody(email),
          onResponse: (status, body) => {
            if (status !== 503 || !body.includes('"temporarily_unavailable"') || performance.now() > floodEnd) return;
            unavailable++;
            if (!refused) connectionsRefused++;
            refused = true;
          },
        },
      ]);
    };
    const sampler = new RssSampler(server.child.pid, 50);
    const floodStart = performance.now();
    const flood = new Accumulator();
    flood.add(await loadSlice({ url: server.base, connections: floodConnections, seconds: floodSeconds, end: floodEnd, timeout: 60, setupClient }));
    // The queue keeps draining after the clients are gone: a login that queues behind it tells
    // us when the server is idle again; keep sampling until then.
    const drainStart = Date.now();
    let drained = false;
    while (Date.now() - drainStart < 120_000) {
      const r = await post(`${server.base}/oauth/token`, passwordBody(users[0]!), FORM).catch(() => ({ status: 0, json: {} }));
      if (r.status === 200) {
        drained = true;
        break;
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    const drainSeconds = (Date.now() - drainStart) / 1000;
    const peakSampled = sampler.stop();
    const after = readMem(server.child.pid);
    // VmHWM is a lifetime peak: it says something about the flood only if the flood raised it;
    // otherwise the sampled maximum (every 50 ms) is the flood's peak.
    const peak = after && after.hwmKiB > before.hwmKiB ? after.hwmKiB : peakSampled;

    const ok200 = flood.statusCodes["200"] ?? 0;
    const answered = Object.values(flood.statusCodes).reduce((a, b) => a + b, 0);
    const other = answered - ok200 - unavailable;
    line("POST /oauth/token password (flood)", flood.figure(), flood.statusText());
    note(
      `flood: ${ok200} logged in, ${unavailable} answers 503 temporarily_unavailable (to ${connectionsRefused} of ${floodConnections} connections; ` +
        `a refused connection retries at once), ${other} other non-2xx, ` +
        `${flood.errors} socket errors/timeouts within ${floodSeconds}s; the rest were still in flight. ` +
        `Drained ${drained ? `${drainSeconds.toFixed(1)}s` : "NOT within 120s"} after the clients stopped ` +
        `(${((performance.now() - floodStart) / 1000).toFixed(1)}s after the flood began)`,
    );
    // "Bounded": the flood may add the hashes in flight (concurrency x m_cost) and a fixed
    // allowance for sockets, parsers and queued requests; it must not grow with the flood.
    const allowanceKiB = passwordHashConcurrency * argon2.memoryCost + 64 * 1024;
    const bound = before.hwmKiB + allowanceKiB;
    note(
      `RSS: before ${fmtMiB(before.rssKiB)}, peak during flood ${fmtMiB(peak)} (sampled max ${fmtMiB(peakSampled)}, VmHWM ${fmtMiB(after?.hwmKiB ?? NaN)}), ` +
        `after drain ${fmtMiB(after?.rssKiB ?? NaN)}; bound = pre-flood peak + ${passwordHashConcurrency} x ${fmtMiB(argon2.memoryCost)} + 64 MiB = ${fmtMiB(bound)}`,
    );
    const expect503 = floodConnections > passwordHashConcurrency + passwordHashQueue;
    const attempted = answered + flood.errors;
    const errorRate = attempted === 0 ? 1 : (flood.errors + other) / attempted;
    let ok = drained;
    if (!drained) found.fail("login flood: the server did not accept a login within 120s after the flood");
    if (errorRate > MAX_FAILURE_RATE) {
      found.fail(`login flood: ${(errorRate * 100).toFixed(2)}% failed other than with 503 (${flood.statusText()})`);
      ok = false;
    }
    found.row({
      scenario: `peak RSS, login flood x${floodConnections}`,
      figure: fmtMiB(peak),
      baseline: `${fmtMiB(before.hwmKiB)} pre-flood peak`,
      ratio: before.hwmKiB > 0 ? peak / before.hwmKiB : null,
      goal: `<= ${fmtMiB(bound)}`,
      status: !ok ? "FAILED" : peak <= bound ? "met" : "MISSED",
    });
    found.row({
      scenario: "login flood: 503 from hash queue",
      figure: `${unavailable} of ${attempted} answers, ${connectionsRefused} conns`,
      baseline: `queue ${passwordHashQueue} + ${passwordHashConcurrency} running`,
      ratio: null,
      goal: expect503 ? "> 0 (queue bounded)" : "report",
      status: !ok ? "FAILED" : !expect503 ? "info" : unavailable > 0 ? "met" : "MISSED",
    });
    return found;
  },
};
