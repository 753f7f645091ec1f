// WORKERS=auto under a real CPU quota: a process started in a cgroup limited to one CPU counts one
// usable CPU, as a container limited to one CPU would (src/cpus.ts). Needs root and the cgroup v1
// cpu controller (this project's machines have both); elsewhere the fake-file cases in
// test/unit/cpus.test.ts still run.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { usableCpus } from "../../src/cpus.ts";
import { ROOT } from "../helpers/process.ts";

const CPU_V1 = "/sys/fs/cgroup/cpu";
// With one core the answer is 1 with or without the quota: nothing to tell apart.
const usable = process.getuid?.() === 0 && existsSync(path.join(CPU_V1, "cpu.cfs_quota_us")) && os.availableParallelism() >= 2;

/** What loadConfig makes of WORKERS=auto in a new node process, started in `cgroup` if given. */
function workersAuto(cgroup?: string): { workers: number; passwordHashConcurrency: number } {
  const script = `const { loadConfig } = await import(${JSON.stringify(path.join(ROOT, "src/config.ts"))});
const c = loadConfig({ DATABASE_URL: "file:/tmp/unused.db", WORKERS: "auto", ISSUER: "https://issuer.test" });
console.log(JSON.stringify({ workers: c.workers, passwordHashConcurrency: c.passwordHashConcurrency }));`;
  const node = [process.execPath, "--import", "tsx", "--input-type=module", "-e", script];
  // The shell moves itself into the cgroup, then becomes node (which stays in it).
  const args = cgroup ? ["sh", "-c", 'echo $$ > "$0"; exec "$@"', path.join(cgroup, "cgroup.procs"), ...node] : node;
  return JSON.parse(execFileSync(args[0]!, args.slice(1), { cwd: ROOT, encoding: "utf8" })) as { workers: number; passwordHashConcurrency: number };
}

describe.skipIf(!usable)("WORKERS=auto in a cgroup with a CPU quota (cgroup v1, as root)", () => {
  it("counts the quota, not the host's cores", () => {
    const cgroup = path.join(CPU_V1, `tessera-test-${process.pid}`);
    mkdirSync(cgroup);
    try {
      writeFileSync(path.join(cgroup, "cpu.cfs_period_us"), "100000");
      writeFileSync(path.join(cgroup, "cpu.cfs_quota_us"), "100000");
      expect(workersAuto(cgroup)).toEqual({ workers: 1, passwordHashConcurrency: 1 });
      // Outside it, what this process may use (every core, unless the test itself runs under a quota).
      expect(workersAuto().workers).toBe(usableCpus());
    } finally {
      try {
        rmdirSync(cgroup); // empty again: its one process has exited
      } catch {
        // left behind (a process still in it): not this test's verdict
      }
    }
  }, 60_000);
});
