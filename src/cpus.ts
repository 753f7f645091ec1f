// How many CPUs this process may use: the CPUs it may run on (os.availableParallelism()), capped
// by a CPU quota of its cgroup or any cgroup above it (a container's CPU limit: Docker --cpus,
// a Kubernetes limits.cpu). Node 20's libuv counts only the CPUs, so in a container limited to 2
// CPUs on a 64-core host, WORKERS=auto would start 64 workers (64 Postgres pools) and let each
// hash as many passwords at once as the host has cores, in the container's memory.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Reads a file's text, or null when it cannot (missing, not a cgroup system). */
export type ReadText = (file: string) => string | null;

const readText: ReadText = (file) => {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
};

/** The directory and its parents up to `root`, deepest first. */
function upTo(root: string, dir: string): string[] {
  const dirs: string[] = [];
  for (let d = path.join(root, dir).replace(/(.)\/+$/, "$1"); d === root || d.startsWith(`${root}/`); d = path.dirname(d)) {
    dirs.push(d);
    if (d === root) break;
  }
  return dirs;
}

/**
 * The CPU quota (in CPUs, fractional) of the cgroups this process is in, and of their parents;
 * the smallest one, or Infinity when none is set. cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us).
 */
export function cgroupCpuQuota(read: ReadText = readText, cgroupRoot = "/sys/fs/cgroup"): number {
  const membership = read("/proc/self/cgroup");
  if (membership === null) return Infinity;
  let quota = Infinity;
  for (const line of membership.split("\n")) {
    // "hierarchy-id:controllers:path"; the path itself may contain ':'.
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, dir] = m as unknown as [string, string, string, string];
    if (id === "0" && controllers === "") {
      // cgroup v2: "<quota> <period>" or "max <period>"
      for (const d of upTo(cgroupRoot, dir)) {
        const [q, p] = (read(path.join(d, "cpu.max")) ?? "").trim().split(/\s+/);
        if (q && p && q !== "max" && Number(q) > 0 && Number(p) > 0) quota = Math.min(quota, Number(q) / Number(p));
      }
    } else if (controllers.split(",").includes("cpu")) {
      // cgroup v1: the cpu controller's own mount ("cpu" or "cpu,cpuacct"); quota -1 = none
      const mount = [path.join(cgroupRoot, controllers), path.join(cgroupRoot, "cpu")].find((m) => read(path.join(m, "cpu.cfs_period_us")) !== null);
      if (!mount) continue;
      for (const d of upTo(mount, dir)) {
        const q = Number(read(path.join(d, "cpu.cfs_quota_us")));
        const p = Number(read(path.join(d, "cpu.cfs_period_us")));
        if (q > 0 && p > 0) quota = Math.min(quota, q / p);
      }
    }
  }
  return quota;
}

/** CPUs this process may use: os.availableParallelism(), capped by the cgroup quota (rounded up, at least 1). */
export function usableCpus(read: ReadText = readText, cgroupRoot = "/sys/fs/cgroup", cpus = os.availableParallelism()): number {
  const quota = cgroupCpuQuota(read, cgroupRoot);
  return Number.isFinite(quota) ? Math.max(1, Math.min(cpus, Math.ceil(quota))) : cpus;
}
