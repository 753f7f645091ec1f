// The audit event INSERT runs on the driver (src/storage/prisma/audit-queries.ts) while every read
// goes through Prisma: a row written one way must read back exactly, sort and filter by time to
// the millisecond, and prune, on both databases.
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeEachDb, startIssuer, type TestIssuer } from "../helpers/issuer.ts";

describeEachDb("audit events written on the driver, read through Prisma", (flavor) => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startIssuer(flavor);
  });
  afterAll(async () => {
    await issuer?.close();
  });

  it("a recorded event reads back field for field, details and nulls included", async () => {
    const audit = issuer.storage.audit;
    const event = {
      id: randomUUID(),
      type: "test.roundtrip",
      at: new Date("2026-03-04T05:06:07.089Z"),
      userId: null,
      clientId: "web",
      sessionId: randomUUID(),
      details: { tokenId: "t1", nested: { n: 1.5, ok: true }, text: "quote \" and ünïcödé" },
    };
    await audit.record(event);
    const [back] = await audit.list({ type: "test.roundtrip" });
    expect(back).toEqual(event);
    // An event without optional fields: nulls and an empty details object.
    await audit.record({ id: randomUUID(), type: "test.bare", at: new Date("2026-03-04T05:06:07.000Z") });
    const [bare] = await audit.list({ type: "test.bare" });
    expect(bare).toMatchObject({ userId: null, clientId: null, sessionId: null, details: {} });
  });

  it("time filters and the newest-first order hold to the millisecond", async () => {
    const audit = issuer.storage.audit;
    const base = Date.parse("2026-05-06T07:08:09.000Z");
    const ids: string[] = [];
    for (const ms of [0, 1, 2, 999, 1000]) {
      const id = randomUUID();
      ids.push(id);
      await audit.record({ id, type: "test.order", at: new Date(base + ms), clientId: "c" });
    }
    const page = await audit.page({ type: "test.order", from: new Date(base + 1), to: new Date(base + 1000), limit: 10 });
    // [from, to): 1, 2 and 999 ms; newest first.
    expect(page.map((e) => e.at.getTime() - base)).toEqual([999, 2, 1]);
    expect(page.map((e) => e.id)).toEqual([ids[3], ids[2], ids[1]]);
    // Pruning compares the same column: everything before base + 2 ms goes, nothing else.
    await audit.prune(new Date(base + 2));
    const left = await audit.page({ type: "test.order", limit: 10 });
    expect(left.map((e) => e.at.getTime() - base)).toEqual([1000, 999, 2]);
  });

  it("an event recorded inside the database key store's transaction is kept, without waiting for a lock", async () => {
    // The key manager records key.* events inside that transaction; on SQLite it holds the write
    // lock on Prisma's connection, which the driver's connection would wait for in vain (5 s, then
    // SQLITE_BUSY, and the rotation fails).
    const store = issuer.storage.keyStore(randomBytes(32));
    const id = randomUUID();
    const started = Date.now();
    await store.transaction(async (tx) => {
      await tx.list();
      await issuer.storage.audit.record({ id, type: "test.in_transaction", at: new Date(), clientId: "cli" });
    });
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await issuer.storage.audit.list({ type: "test.in_transaction" })).map((e) => e.id)).toEqual([id]);
  });

  it("an event recorded inside the key store's transaction goes with it: a rolled-back rotation leaves no event", async () => {
    const store = issuer.storage.keyStore(randomBytes(32));
    const id = randomUUID();
    await expect(
      store.transaction(async () => {
        await issuer.storage.audit.record({ id, type: "test.rolled_back", at: new Date(), clientId: "cli" });
        throw new Error("the rotation fails after recording");
      }),
    ).rejects.toThrow(/the rotation fails/);
    expect(await issuer.storage.audit.list({ type: "test.rolled_back" })).toEqual([]);
  });

  it("rows from the driver and from Prisma at the same millisecond order by id, as the paging cursor needs", async () => {
    const at = new Date("2026-07-08T09:10:11.012Z");
    // The driver's row has the lower id: only the same stored text for the same instant puts it second.
    await issuer.storage.audit.record({ id: "00000000-driver", type: "test.mixed", at });
    await issuer.storage.db.auditEvent.create({ data: { id: "ffffffff-prisma", type: "test.mixed", at, details: "{}" } });
    const page = await issuer.storage.audit.page({ type: "test.mixed", limit: 10 });
    expect(page.map((e) => e.id)).toEqual(["ffffffff-prisma", "00000000-driver"]);
    const after = await issuer.storage.audit.page({ type: "test.mixed", limit: 10, before: { at, id: "ffffffff-prisma" } });
    expect(after.map((e) => e.id)).toEqual(["00000000-driver"]);
  });
});
