import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration } from "../../src/config.ts";
import { usableCpus } from "../../src/cpus.ts";

describe("config", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: "127.0.0.1",
      issuer: "http://localhost:3000",
      databaseUrl: "file:./data/tessera.db",
      signingAlg: "ES256",
      accessTokenTtl: 900,
      refreshTokenTtl: 30 * 86400,
      refreshIdleTtl: 7 * 86400,
      refreshReuseGrace: 10,
      cookieSecure: true,
      allowRegistration: true,
      logLevel: "info",
      jwksMaxAge: 300,
      webClientId: "web",
      allowedOrigins: ["http://localhost:3000"],
      argon2: { memoryCost: 19456, timeCost: 2, parallelism: 1 },
      metricsEnabled: true,
      metricsToken: null,
      metricsPort: null,
      metricsHost: "127.0.0.1",
      allowInsecureIssuer: false,
      refreshCookieName: "refresh_token",
      refreshCookiePath: "/auth",
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("accepts durations in seconds or with a unit", () => {
    expect(parseDuration("900")).toBe(900);
    expect(parseDuration("15m")).toBe(900);
    expect(parseDuration("12h")).toBe(43200);
    expect(parseDuration("30d")).toBe(2592000);
    expect(parseDuration("-5")).toBeUndefined();
    expect(parseDuration("1.5h")).toBeUndefined();
    expect(parseDuration("15 minutes")).toBeUndefined();
    const c = loadConfig({ ACCESS_TOKEN_TTL: "5m", REFRESH_TOKEN_TTL: "90d", REFRESH_IDLE_TTL: "12h" });
    expect([c.accessTokenTtl, c.refreshTokenTtl, c.refreshIdleTtl]).toEqual([300, 90 * 86400, 43200]);
  });

  it("reports every bad variable at once, one line each, naming the variable", () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: "abc",
        SIGNING_ALG: "HS256",
        ACCESS_TOKEN_TTL: "-5",
        COOKIE_SECURE: "maybe",
        ISSUER: "ftp://x",
        DATABASE_URL: "mysql://x",
        ARGON2_MEMORY_KIB: "1024",
        ALLOWED_ORIGINS: "https://ok.test,https://bad.test/path",
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    for (const name of ["PORT", "SIGNING_ALG", "ACCESS_TOKEN_TTL", "COOKIE_SECURE", "ISSUER", "DATABASE_URL", "ARGON2_MEMORY_KIB", "ALLOWED_ORIGINS"]) {
      expect(problems.filter((p) => p.startsWith(name))).toHaveLength(1);
    }
    expect(problems).toHaveLength(8);
    // Argon2 below OWASP's minimum is refused, not silently accepted.
    expect(problems.find((p) => p.startsWith("ARGON2_MEMORY_KIB"))).toMatch(/19456/);
  });

  it("derives the issuer from the port and strips a trailing slash", () => {
    expect(loadConfig({ PORT: "8080" }).issuer).toBe("http://localhost:8080");
    expect(loadConfig({ ISSUER: "https://auth.example.com/" }).issuer).toBe("https://auth.example.com");
    expect(loadConfig({ ISSUER: "https://auth.example.com/" }).allowedOrigins).toEqual(["https://auth.example.com"]);
  });

  it("accepts every supported signing algorithm and rejects others", () => {
    for (const alg of ["ES256", "RS256", "PS256", "EdDSA"]) expect(loadConfig({ SIGNING_ALG: alg }).signingAlg).toBe(alg);
    for (const alg of ["none", "HS256", "es256", "RS512"]) expect(() => loadConfig({ SIGNING_ALG: alg })).toThrow(/SIGNING_ALG/);
  });

  // RFC 8414 §2: an https issuer. Plain http only where it never leaves the machine.
  it.each([
    "http://localhost",
    "http://localhost:3000",
    "http://LOCALHOST:3000/",
    "http://127.0.0.1:8080",
    "http://127.1.2.3",
    "http://127.1", // the URL parser writes it 127.0.0.1
    "http://[::1]:3000",
    "http://[0:0:0:0:0:0:0:1]",
    "https://auth.example.com",
    "https://10.0.0.5:8443",
  ])("ISSUER=%s is accepted", (issuer) => {
    expect(() => loadConfig({ ISSUER: issuer })).not.toThrow();
  });

  it.each([
    "http://auth.example.com",
    "http://10.0.0.5:3000",
    "http://0.0.0.0:3000",
    "http://192.168.1.10",
    "http://[::]:3000",
    "http://[::ffff:10.0.0.1]",
    "http://auth.localhost:3000", // *.localhost: the verifiers' resolvers may ask DNS for it
    "http://localhost.example.com",
    "http://127.0.0.1.nip.io",
  ])("ISSUER=%s is refused: one ISSUER line naming https and ALLOW_INSECURE_ISSUER", (issuer) => {
    let error: unknown;
    try {
      loadConfig({ ISSUER: issuer });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^ISSUER=/);
    expect(problems[0]).toMatch(/https/);
    expect(problems[0]).toContain("ALLOW_INSECURE_ISSUER=true");
    // The development escape hatch.
    expect(loadConfig({ ISSUER: issuer, ALLOW_INSECURE_ISSUER: "true" })).toMatchObject({ allowInsecureIssuer: true });
  });

  it("METRICS_PORT: a port other than PORT; METRICS_HOST defaults to loopback", () => {
    expect(loadConfig({ METRICS_PORT: "9464" })).toMatchObject({ metricsPort: 9464, metricsHost: "127.0.0.1" });
    expect(loadConfig({ METRICS_PORT: "9464", METRICS_HOST: "10.0.0.5" })).toMatchObject({ metricsPort: 9464, metricsHost: "10.0.0.5" });
    expect(() => loadConfig({ METRICS_PORT: "3000" })).toThrow(/METRICS_PORT=3000: must differ from PORT/);
    expect(() => loadConfig({ PORT: "8080", METRICS_PORT: "8080" })).toThrow(/METRICS_PORT/);
    for (const bad of ["0", "65536", "metrics", "-1"]) expect(() => loadConfig({ METRICS_PORT: bad }), bad).toThrow(/METRICS_PORT/);
  });

  it("WORKERS: 1 by default, a number, or auto (one per usable CPU); anything else is refused", () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ WORKERS: "4" }).workers).toBe(4);
    expect(loadConfig({ WORKERS: "auto" }).workers).toBe(usableCpus());
    // The password hash bulkhead shares the usable CPUs among the workers.
    expect(loadConfig({}).passwordHashConcurrency).toBe(usableCpus());
    expect(loadConfig({ WORKERS: String(usableCpus()) }).passwordHashConcurrency).toBe(1);
    expect(loadConfig({ WORKERS: "4", PASSWORD_HASH_CONCURRENCY: "3" }).passwordHashConcurrency).toBe(3);
    for (const bad of ["0", "-1", "two", "1.5", "257"]) {
      expect(() => loadConfig({ WORKERS: bad }), bad).toThrow(/WORKERS=.*expected a whole number from 1 to 256, or auto/);
    }
  });

  it("refuses a long reuse grace window", () => {
    expect(() => loadConfig({ REFRESH_REUSE_GRACE: "1h" })).toThrow(/REFRESH_REUSE_GRACE/);
    expect(loadConfig({ REFRESH_REUSE_GRACE: "0" }).refreshReuseGrace).toBe(0);
  });
});
