// How many CPUs WORKERS=auto and the password hashing default count (src/cpus.ts): the cores,
// capped by a CPU quota of the process's cgroup or a parent's, on cgroup v2 and v1 layouts as
// Docker and Kubernetes make them. The files are given; the real ones are what a container has.
import { describe, expect, it } from "vitest";
import { cgroupCpuQuota, usableCpus } from "../../src/cpus.ts";

const fsOf = (files: Record<string, string>) => (file: string) => files[file] ?? null;

describe("usable CPUs: the cores, capped by the cgroup's CPU quota", () => {
  it("cgroup v2 (a container: its own cgroup is the namespace's root): cpu.max's quota / period, rounded up", () => {
    const read = fsOf({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "150000 100000\n" });
    expect(cgroupCpuQuota(read)).toBe(1.5);
    expect(usableCpus(read, "/sys/fs/cgroup", 64)).toBe(2);
  });

  it("cgroup v2 without a limit ('max'), or without the file: every core", () => {
    expect(usableCpus(fsOf({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }), "/sys/fs/cgroup", 64)).toBe(64);
    expect(usableCpus(fsOf({ "/proc/self/cgroup": "0::/\n" }), "/sys/fs/cgroup", 64)).toBe(64);
  });

  it("cgroup v2 nested (systemd slice, a pod): the smallest quota on the way up counts", () => {
    const read = fsOf({
      "/proc/self/cgroup": "0::/kubepods.slice/pod1/ctr\n",
      "/sys/fs/cgroup/kubepods.slice/pod1/ctr/cpu.max": "max 100000",
      "/sys/fs/cgroup/kubepods.slice/pod1/cpu.max": "300000 100000",
      "/sys/fs/cgroup/kubepods.slice/cpu.max": "800000 100000",
      "/sys/fs/cgroup/cpu.max": "max 100000",
    });
    expect(usableCpus(read, "/sys/fs/cgroup", 16)).toBe(3);
  });

  it("a quota below one CPU still leaves one; a quota above the cores leaves the cores", () => {
    expect(usableCpus(fsOf({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "20000 100000" }), "/sys/fs/cgroup", 8)).toBe(1);
    expect(usableCpus(fsOf({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "1600000 100000" }), "/sys/fs/cgroup", 8)).toBe(8);
  });

  it("cgroup v1 (cpu,cpuacct mounted together): cfs_quota_us / cfs_period_us; -1 is none", () => {
    const v1 = (quota: string) =>
      fsOf({
        "/proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
        "/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us": "100000",
        "/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us": "-1",
        "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": quota,
      });
    expect(usableCpus(v1("250000"), "/sys/fs/cgroup", 32)).toBe(3);
    expect(usableCpus(v1("-1"), "/sys/fs/cgroup", 32)).toBe(32);
  });

  it("cgroup v1 with the cpu controller mounted alone (this machine's layout)", () => {
    const read = fsOf({
      "/proc/self/cgroup": "4:memory:/x\n1:cpu:/tessera\n0::/\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
      "/sys/fs/cgroup/cpu/tessera/cpu.cfs_period_us": "100000",
      "/sys/fs/cgroup/cpu/tessera/cpu.cfs_quota_us": "100000",
    });
    expect(usableCpus(read, "/sys/fs/cgroup", 2)).toBe(1);
  });

  it("a path that climbs out of the hierarchy (a cgroup namespace's '/..') reads nothing beside it", () => {
    const read = fsOf({
      "/proc/self/cgroup": "1:cpu:/../cpu,cpuacct/x\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
      "/sys/fs/cgroup/cpu,cpuacct/x/cpu.cfs_period_us": "100000",
      "/sys/fs/cgroup/cpu,cpuacct/x/cpu.cfs_quota_us": "100000",
    });
    expect(usableCpus(read, "/sys/fs/cgroup", 4)).toBe(4);
  });

  it("no cgroups at all (not Linux, or /proc not mounted): every core", () => {
    expect(usableCpus(fsOf({}), "/sys/fs/cgroup", 12)).toBe(12);
    expect(cgroupCpuQuota(fsOf({ "/proc/self/cgroup": "garbage\n\n" }))).toBe(Infinity);
  });
});
