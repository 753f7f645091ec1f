import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration } from "../../src/config.ts";

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

  it("refuses a long reuse grace window", () => {
    expect(() => loadConfig({ REFRESH_REUSE_GRACE: "1h" })).toThrow(/REFRESH_REUSE_GRACE/);
    expect(loadConfig({ REFRESH_REUSE_GRACE: "0" }).refreshReuseGrace).toBe(0);
  });
});
