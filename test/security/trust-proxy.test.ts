// Behind TRUST_PROXY, the client's address is the right-most X-Forwarded-For hop that is not a
// trusted proxy. The left-most entry is whatever the client wrote: believing it (as trusting
// every hop does) lets an attacker pick a fresh address for every request and walk past the
// per-address throttle and rate limits.
import { afterAll, expect, it } from "vitest";
import { describeEachDb, form, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("security: client address behind proxies", (flavor) => {
  const issuers: TestIssuer[] = [];
  afterAll(async () => {
    for (const i of issuers) await i.close();
  });
  const start = async (env: Record<string, string>) => {
    const issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "3", ...env } });
    issuers.push(issuer);
    return issuer;
  };
  /** A request that reached us through a proxy at `peer`, carrying the X-Forwarded-For it built. */
  const viaProxy = (issuer: TestIssuer, peer: string, xff: string, email: string, password: string) =>
    issuer.app.inject({
      method: "POST",
      url: "/oauth/token",
      remoteAddress: peer,
      headers: { ...form({}).headers, "x-forwarded-for": xff },
      payload: new URLSearchParams({ grant_type: "password", client_id: "web", username: email, password }).toString(),
    });
  const addressesOf = async (issuer: TestIssuer, userId: string) =>
    (await issuer.storage.audit.list({ type: "login.failed", limit: 1000 })).filter((e) => e.userId === userId).map((e) => e.details?.address);

  it("TRUST_PROXY=true trusts one hop: a spoofed left-most entry is ignored, the real client is seen, and the throttle holds", async () => {
    const issuer = await start({ TRUST_PROXY: "true" });
    const user = await register(issuer.app);
    // The attacker at 203.0.113.7 writes a new fake address into X-Forwarded-For each time; the
    // proxy (10.0.0.1) appends the address it saw.
    for (let i = 0; i < 3; i++) {
      await viaProxy(issuer, "10.0.0.1", `6.6.6.${i}, 203.0.113.7`, user.email, `guess ${i}`);
      // The request log names the real client, not the address it made up.
      expect(issuer.logs.parsed().filter((l) => l.msg === "request" && l.path === "/oauth/token").at(-1)?.ip).toBe("203.0.113.7");
    }
    expect(await addressesOf(issuer, user.id)).toEqual(["203.0.113.7", "203.0.113.7", "203.0.113.7"]);
    const res = await viaProxy(issuer, "10.0.0.1", "6.6.6.99, 203.0.113.7", user.email, user.password);
    expect(res.statusCode).toBe(400); // the attacker's address waits, whatever it claims
    // The owner behind the same proxy is someone else.
    expect((await viaProxy(issuer, "10.0.0.1", "192.0.2.44", user.email, user.password)).statusCode).toBe(200);
    // The request log names the same client.
    const lines = issuer.logs.parsed().filter((l) => l.msg === "request" && l.path === "/oauth/token");
    expect(lines.at(-1)?.ip).toBe("192.0.2.44");
  });

  it("a proxy that writes the client's port too (ip:port): a new port per connection is still one address, and the throttle holds", async () => {
    const issuer = await start({ TRUST_PROXY: "true" });
    const user = await register(issuer.app);
    for (let i = 0; i < 3; i++) await viaProxy(issuer, "10.0.0.1", `203.0.113.7:${50000 + i}`, user.email, `guess ${i}`);
    expect(await addressesOf(issuer, user.id)).toEqual(["203.0.113.7", "203.0.113.7", "203.0.113.7"]);
    // The third failure locked 203.0.113.7: the right password from a fourth port waits too.
    const locked = await viaProxy(issuer, "10.0.0.1", "203.0.113.7:50003", user.email, user.password);
    expect(locked.statusCode).toBe(400);
  });

  it("trusted proxies by address: every trusted hop is skipped from the right, the first untrusted one is the client", async () => {
    const issuer = await start({ TRUST_PROXY: "10.0.0.0/8,loopback" });
    const user = await register(issuer.app);
    // client -> CDN edge (10.1.2.3, trusted) -> load balancer (10.0.0.1, trusted) -> us
    await viaProxy(issuer, "10.0.0.1", "6.6.6.6, 198.51.100.23, 10.1.2.3", user.email, "wrong password");
    expect(await addressesOf(issuer, user.id)).toEqual(["198.51.100.23"]);
    // A request straight from the internet (not through a trusted proxy): its own header is ignored.
    await viaProxy(issuer, "198.51.100.99", "10.9.9.9", user.email, "wrong password");
    expect((await addressesOf(issuer, user.id)).at(-1)).toBe("198.51.100.99");
  });

  it("TRUST_PROXY=2: two hops are trusted, whatever their addresses", async () => {
    const issuer = await start({ TRUST_PROXY: "2" });
    const user = await register(issuer.app);
    await viaProxy(issuer, "172.16.0.1", "6.6.6.6, 198.51.100.24, 172.16.0.9", user.email, "wrong password");
    expect(await addressesOf(issuer, user.id)).toEqual(["198.51.100.24"]);
  });

  it("without TRUST_PROXY, X-Forwarded-For is ignored entirely", async () => {
    const issuer = await start({});
    const user = await register(issuer.app);
    await viaProxy(issuer, "198.51.100.25", "6.6.6.6", user.email, "wrong password");
    expect(await addressesOf(issuer, user.id)).toEqual(["198.51.100.25"]);
  });
});
