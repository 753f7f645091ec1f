// Brute-force throttling as a user sees it: repeated wrong passwords from one address make that
// address wait (exponential backoff, same answer as any failure); the account itself is never
// locked for other addresses; a success clears the address; attempts while waiting are not
// evaluated and do not extend the wait.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, form, register, startIssuer, uniqueEmail, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("login throttling", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, {
      env: { LOGIN_LOCKOUT_THRESHOLD: "3", LOGIN_LOCKOUT_BASE: "60", LOGIN_LOCKOUT_MAX: "600" },
    });
  });
  afterAll(async () => issuer?.close());

  const attempt = (email: string, password: string, from = "203.0.113.7") =>
    issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "password", client_id: "web", username: email, password }) });

  it("after 3 wrong passwords from one address even the right one is refused from it, with the same answer, until the wait ends", async () => {
    const user = await register(issuer.app);
    const wrong = await attempt(user.email, "not the password");
    for (let i = 0; i < 2; i++) expect((await attempt(user.email, "not the password")).body).toBe(wrong.body);

    const locked = await attempt(user.email, user.password);
    expect(locked.statusCode).toBe(400);
    expect(locked.body).toBe(wrong.body);
    expect((await attempt(uniqueEmail("nobody"), user.password)).body).toBe(wrong.body);
    const events = await issuer.services.storage.audit.list({ type: "login.locked" });
    expect(events.some((e) => e.userId === user.id && e.details?.scope === "address")).toBe(true);

    issuer.clock.advance(59);
    expect((await attempt(user.email, user.password)).statusCode).toBe(400);
    issuer.clock.advance(2);
    expect((await attempt(user.email, user.password)).statusCode).toBe(200);
    // A success from the address forgets its failures: the next wrong password does not lock it.
    expect((await attempt(user.email, "wrong again")).statusCode).toBe(400);
    expect((await attempt(user.email, user.password)).statusCode).toBe(200);
  });

  it("the wait doubles with each further failure from the address, up to the maximum", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 3; i++) await attempt(user.email, "nope nope nope");
    issuer.clock.advance(61); // first wait (60 s) over
    await attempt(user.email, "nope nope nope"); // 4th failure: 120 s
    issuer.clock.advance(61);
    expect((await attempt(user.email, user.password)).statusCode).toBe(400);
    issuer.clock.advance(60);
    expect((await attempt(user.email, user.password)).statusCode).toBe(200);
  });

  it("attempts during the wait are not evaluated and do not extend it", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 3; i++) await attempt(user.email, "wrong wrong wrong");
    for (let i = 0; i < 5; i++) await attempt(user.email, "wrong wrong wrong");
    const failures = await issuer.storage.audit.list({ type: "login.failed" });
    const mine = failures.filter((e) => e.userId === user.id);
    expect(mine.filter((e) => e.details?.reason === "wrong_password")).toHaveLength(3);
    expect(mine.filter((e) => e.details?.reason === "address_locked")).toHaveLength(5);
    issuer.clock.advance(61);
    expect((await attempt(user.email, user.password)).statusCode).toBe(200);
  });

  it("the wait is the address's: the owner from another address is let in meanwhile", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 5; i++) await attempt(user.email, "attacker guess", "198.51.100.1");
    expect((await attempt(user.email, user.password, "198.51.100.1")).statusCode).toBe(400);
    expect((await attempt(user.email, user.password, "192.0.2.55")).statusCode).toBe(200);
  });

  it("IPv6 addresses count by their /64: rotating the interface id does not reset the wait", async () => {
    const user = await register(issuer.app);
    for (let i = 1; i <= 3; i++) await attempt(user.email, "v6 guess", `2001:db8:1:2::${i}`);
    expect((await attempt(user.email, user.password, "2001:db8:1:2:aaaa::9")).statusCode).toBe(400);
    expect((await attempt(user.email, user.password, "2001:db8:1:3::1")).statusCode).toBe(200);
  });
});

describeEachDb("login throttling disabled", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "0" } });
  });
  afterAll(async () => issuer?.close());

  it("LOGIN_LOCKOUT_THRESHOLD=0 never makes an address wait", async () => {
    const user = await register(issuer.app);
    const send = (password: string) => issuer.app.inject({ method: "POST", url: "/oauth/token", ...form({ grant_type: "password", client_id: "web", username: user.email, password }) });
    for (let i = 0; i < 12; i++) await send("wrong wrong wrong");
    expect((await send(user.password)).statusCode).toBe(200);
  });
});
