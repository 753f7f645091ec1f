// Finding 1: an attacker must not be able to keep the owner out for ever. The old lock was the
// account's, and one wrong password per LOGIN_LOCKOUT_MAX renewed it indefinitely. Now failures
// are counted per account AND address, and decay: the attacker's guessing locks out only the
// attacker's address, while OWASP ASVS 2.2.1 still holds for the account as a whole: no more
// than 100 failed attempts per hour are evaluated, whatever the number of addresses. Addresses
// the owner logged in from before are exempt from that hourly cap (only their own wait applies),
// so even a botnet that fills the hour does not keep the owner out of their usual places.
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, form, register, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("security: lockout cannot be made permanent", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "5", LOGIN_LOCKOUT_BASE: "60", LOGIN_LOCKOUT_MAX: "3600" } });
  });
  afterAll(async () => issuer?.close());

  const attempt = (email: string, password: string, from: string) =>
    issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "password", client_id: "web", username: email, password }) });
  const ATTACKER = "198.51.100.66";
  const OWNER = "192.0.2.10";

  it("an attacker renewing the lock from one address for two days never keeps the owner out from another", async () => {
    const user = await register(issuer.app);
    for (let i = 0; i < 5; i++) expect((await attempt(user.email, `guess ${i}`, ATTACKER)).statusCode).toBe(400);
    // One more wrong password each time the attacker's wait ends: the old account lock's
    // renewal pattern, for two days.
    for (let hour = 0; hour < 48; hour++) {
      issuer.clock.advance(3601);
      expect((await attempt(user.email, `renewal ${hour}`, ATTACKER)).statusCode).toBe(400);
      if (hour % 12 === 0) expect((await attempt(user.email, user.password, OWNER)).statusCode, `hour ${hour}`).toBe(200);
    }
    expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(200);
    // The attacker's own address is still made to wait, even with the right password.
    expect((await attempt(user.email, user.password, ATTACKER)).statusCode).toBe(400);
  });

  it("failures decay: a few mistakes a day apart never add up to a lock", async () => {
    const user = await register(issuer.app);
    // Four typos a day (one short of the threshold) for four days, never a success in between...
    for (let day = 0; day < 4; day++) {
      for (let i = 0; i < 4; i++) expect((await attempt(user.email, "typo typo typo", OWNER)).statusCode).toBe(400);
      if (day < 3) issuer.clock.advance(24 * 3600 + 1);
    }
    // ...and the right password right after the fourth day's typos works: only the last day's count.
    expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(200);
  });

  it("ASVS 2.2.1: 150 guesses from 150 addresses in an hour, only 100 are evaluated; the account opens again as the hour slides", async () => {
    const user = await register(issuer.app);
    const row = await issuer.storage.db.user.findUniqueOrThrow({ where: { id: user.id } });
    let evaluated = 0;
    const hasher = issuer.services.hasher;
    const verify = hasher.verify.bind(hasher);
    hasher.verify = async (hash, password) => {
      if (hash === row.passwordHash) evaluated++;
      return verify(hash, password);
    };
    try {
      const first = await attempt(user.email, "botnet guess", "10.1.0.0");
      for (let i = 1; i < 150; i++) {
        const res = await attempt(user.email, `botnet guess ${i}`, `10.1.${i >> 8}.${i & 255}`);
        expect(res.body).toBe(first.body); // throttled or not, the same answer
        issuer.clock.advance(10); // 150 attempts over 25 minutes
      }
      expect(evaluated).toBe(100);
      const events = (await issuer.storage.audit.list({ type: "login.failed", limit: 1000 })).filter((e) => e.userId === user.id);
      expect(events.filter((e) => e.details?.reason === "wrong_password")).toHaveLength(100);
      expect(events.filter((e) => e.details?.reason === "account_limit")).toHaveLength(50);
      // While the hour is full, even the owner's right password is not evaluated...
      expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(400);
      expect(evaluated).toBe(100);
      // ...and once the first failures are more than an hour old, it is.
      issuer.clock.advance(3600 - 25 * 60 + 30);
      expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(200);
    } finally {
      hasher.verify = verify;
    }
  });

  it("a botnet filling the hour does not keep the owner out of an address they logged in from before", async () => {
    const user = await register(issuer.app);
    expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(200); // a known address now
    for (let i = 0; i < 110; i++) await attempt(user.email, `botnet guess ${i}`, `10.2.${i >> 8}.${i & 255}`);
    // A new address meets the full hour (ASVS 2.2.1)...
    expect((await attempt(user.email, user.password, "192.0.2.99")).statusCode).toBe(400);
    // ...the owner's usual address does not.
    expect((await attempt(user.email, user.password, OWNER)).statusCode).toBe(200);
  });
});

describeEachDb("security: a success does not reset the account's hourly count", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor, { env: { LOGIN_LOCKOUT_THRESHOLD: "5", LOGIN_ACCOUNT_FAILURES_PER_HOUR: "5" } });
  });
  afterAll(async () => issuer?.close());

  it("guesses interleaved with the owner's logins at one shared address (a carrier NAT) stay within the hourly cap", async () => {
    const user = await register(issuer.app);
    const shared = "198.51.100.200";
    const send = (password: string, from = shared) =>
      issuer.app.inject({ method: "POST", url: "/oauth/token", remoteAddress: from, ...form({ grant_type: "password", client_id: "web", username: user.email, password }) });
    const row = await issuer.storage.db.user.findUniqueOrThrow({ where: { id: user.id } });
    let evaluatedWrong = 0;
    const hasher = issuer.services.hasher;
    const verify = hasher.verify.bind(hasher);
    hasher.verify = async (hash, password) => {
      if (hash === row.passwordHash && password !== user.password) evaluatedWrong++;
      return verify(hash, password);
    };
    try {
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 4; i++) await send(`guess ${round}.${i}`, `203.0.113.${round * 4 + i}`);
        await send(user.password); // the owner, elsewhere, logs in in between
        issuer.clock.advance(60);
      }
      // 20 guesses over 5 minutes; the account's cap of 5 per hour holds whatever the successes.
      expect(evaluatedWrong).toBe(5);
    } finally {
      hasher.verify = verify;
    }
  });
});
