// The workers of one host (WORKERS > 1) tell each other what they changed, so a verifier or client
// that reaches another worker sees it at once, not at that worker's next timer: a revocation (its
// status list), a key rotation (its JWKS and signer), a disabled client (its cached record).
// Two instances on one database, linked in-process as src/cluster/ipc.ts links workers, with
// every timer far away (status lists 1 h, key reloads never started, client cache 1 h): without
// the link, each assertion below fails. The IPC transport between real workers is covered by
// test/integration/cluster.test.ts.
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { disableClient } from "../../src/admin/clients.ts";
import { rotateKeysNow } from "../../src/admin/keys.ts";
import { adminClient, clientToken } from "../helpers/admin-api.ts";
import { adminOf, describeEachDb, form, freshDatabase, login, startIssuer, statusOf, type TestIssuer } from "../helpers/issuer.ts";
import { linkedSiblings } from "../helpers/siblings.ts";

const FAR = { STATUS_LIST_TTL: "3600", CLIENT_CACHE_TTL: "3600", KEYS_RELOAD_INTERVAL: "3600" };

describeEachDb("workers of one host learn each other's changes at once", (flavor) => {
  let a: TestIssuer;
  let b: TestIssuer;
  let drop: () => Promise<void>;

  beforeEach(async () => {
    const db = await freshDatabase(flavor);
    drop = db.drop;
    const [sa, sb] = linkedSiblings(2);
    a = await startIssuer(flavor, { databaseUrl: db.url, siblings: sa, env: FAR });
    b = await startIssuer(flavor, { databaseUrl: db.url, keysDir: a.keysDir, siblings: sb, env: FAR });
  });
  afterEach(async () => {
    await b?.close();
    await a?.close();
    await drop?.();
  });

  it("a session revoked through one worker is revoked in the other's status list", async () => {
    const pair = await login(a.app);
    expect(await statusOf(b, pair.access_token, b)).toBe(0);
    const res = await a.app.inject({ method: "POST", url: "/oauth/revoke", ...form({ token: pair.refresh_token, client_id: a.config.webClientId }) });
    expect(res.statusCode).toBe(200);
    expect(await statusOf(a, pair.access_token, a)).toBe(1);
    expect(await statusOf(b, pair.access_token, b)).toBe(1);
  });

  it("a key rotated through one worker's admin API is published and used by the other", async () => {
    const before = b.services.keys.signer().kid;
    await rotateKeysNow(adminOf(a));
    const rotated = a.services.keys.signer().kid;
    expect(rotated).not.toBe(before);
    await vi.waitFor(() => expect(b.services.keys.signer().kid).toBe(rotated), { timeout: 5000, interval: 20 });
    const jwks = (await b.app.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(rotated);
  });

  it("a client disabled through one worker is refused by the other, which had it cached", async () => {
    const client = await adminClient(a, ["admin:read"]);
    await clientToken(b, client); // b now holds the client in its cache (CLIENT_CACHE_TTL 1 h)
    await disableClient(adminOf(a), client.id);
    await expect(clientToken(b, client)).rejects.toThrow(/token request failed: 401/);
  });
});
