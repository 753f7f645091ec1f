// The SQLite and Postgres schemas must describe one data model: they may differ only in the
// datasource provider and the generated client's output folder.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), "utf8");

describe("schema parity", () => {
  it("sqlite and postgres schemas are identical but for provider and output", () => {
    const normalise = (s: string) =>
      s.replace(/provider = "(sqlite|postgresql)"/, 'provider = "<db>"').replace(/src\/generated\/(sqlite|postgres)/, "src/generated/<db>");
    expect(normalise(read("prisma/postgres/schema.prisma"))).toBe(normalise(read("prisma/sqlite/schema.prisma")));
  });

  it("both databases have the same migrations, by name", () => {
    const names = (flavor: string) =>
      readdirSync(new URL(`../../prisma/${flavor}/migrations`, import.meta.url)).filter((n) => !n.endsWith(".toml")).sort();
    expect(names("postgres")).toEqual(names("sqlite"));
    expect(names("sqlite").length).toBeGreaterThan(0);
  });
});
