// autocannon, in-process (one client thread), as measurement slices (lib/slices.ts): only
// responses completed inside the window count; latencies come from each response (hrtime, ms
// with fractions) rather than autocannon's whole-millisecond histogram.
import autocannon from "autocannon";
import { cpuTimeMs } from "./proc.ts";
import type { Slice } from "./slices.ts";

/** The client internals a graceful stop needs (autocannon 9 lib/httpClient.js). */
interface ClientInternals {
  reqsMade?: number;
  responseMax?: number;
}

export interface SliceOptions extends Omit<autocannon.Options, "duration"> {
  seconds: number;
  /**
   * Let requests in flight at the end of the window finish (each connection closes after its
   * current response) instead of dropping them: the server is idle when the slice returns, and
   * a client that tracks state from responses (refresh chains) never loses one.
   */
  graceful?: boolean;
  /** end of the window as a performance.now() time (default: now + seconds), for callers
   *  whose own onResponse hooks must count by the same window */
  end?: number;
  /** pid of the server process whose CPU time to account to the slice */
  serverPid?: number;
}

export function loadSlice(opts: SliceOptions): Promise<Slice> {
  const { seconds, graceful = false, setupClient, end: givenEnd, serverPid, ...rest } = opts;
  const clients: Array<autocannon.Client & ClientInternals> = [];
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let errors = 0;
  let timeouts = 0;
  let completed = 0;
  const cpu0 = serverPid === undefined ? NaN : cpuTimeMs(serverPid);
  const end = givenEnd ?? performance.now() + seconds * 1000;
  const inWindow = () => performance.now() <= end;

  return new Promise((resolve, reject) => {
    let stopTimer: NodeJS.Timeout | undefined;
    const options: autocannon.Options = {
      timeout: 20,
      // autocannon notices the end of a run on its sampling tick (default 1 s)
      sampleInt: 100,
      ...rest,
      // graceful: the stop below ends the run; the duration is only a safety net
      duration: graceful ? seconds + 60 : seconds,
      setupClient: (client) => {
        clients.push(client);
        setupClient?.(client);
      },
    };
    const instance = autocannon(options, (err: unknown) => {
      clearTimeout(stopTimer);
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      const cpuMs = serverPid === undefined ? NaN : cpuTimeMs(serverPid) - cpu0;
      resolve({
        window: seconds,
        ok,
        failed,
        latencies,
        statusCodes,
        errors,
        timeouts,
        completed,
        // only meaningful when the server is idle once the slice returns (graceful)
        ...(graceful && Number.isFinite(cpuMs) ? { cpuMs } : {}),
      });
    });
    instance.on("response", (_client, status, _bytes, responseTime) => {
      completed++;
      if (!inWindow()) return;
      statusCodes[status] = (statusCodes[status] ?? 0) + 1;
      if (status >= 200 && status < 300) {
        ok++;
        latencies.push(responseTime);
      } else {
        failed++;
      }
    });
    instance.on("reqError", (err: Error) => {
      if (!inWindow()) return;
      errors++;
      failed++;
      if (/timed out/.test(err?.message ?? "")) timeouts++;
    });
    stopTimer = setTimeout(() => {
      if (!graceful) return;
      // Each connection sends no new request after its current response, then closes;
      // autocannon finishes when the last one has.
      for (const c of clients) {
        if (typeof c.reqsMade !== "number") {
          instance.stop(); // internals changed: fall back to a hard stop
          return;
        }
        c.responseMax = Math.max(1, c.reqsMade);
      }
    }, Math.max(0, end - performance.now()));
  });
}
