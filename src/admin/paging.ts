// Pagination for the admin lists: a page size and an opaque cursor. The cursor is the position
// after the last item returned (base64url JSON), not a secret: whoever may list may read it.
// A cursor that is not one of ours is a 400 naming `cursor`, never a 500.
import { InvalidField } from "../domain/errors.ts";
import { isPlainText } from "./validate.ts";

export const PAGE_DEFAULT = 50;
export const PAGE_MAX = 200;

export interface PageRequest {
  cursor?: string;
  limit?: number;
}

export interface Page<T> {
  items: T[];
  /** null when this is the last page */
  nextCursor: string | null;
}

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return PAGE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX) throw new InvalidField("limit", `limit must be an integer from 1 to ${PAGE_MAX}.`);
  return limit;
}

/** `kind` keeps a cursor of one list from being taken for another's. */
export function encodeCursor(kind: string, position: Record<string, string>): string {
  return Buffer.from(JSON.stringify({ k: kind, ...position })).toString("base64url");
}

export function decodeCursor<K extends string>(kind: string, cursor: string | undefined, keys: readonly K[]): Record<K, string> | null {
  if (cursor === undefined) return null;
  const bad = () => new InvalidField("cursor", "The cursor is not valid for this list; start again without it.");
  if (cursor.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (typeof value !== "object" || value === null || (value as { k?: unknown }).k !== kind) throw bad();
  const out = {} as Record<K, string>;
  for (const key of keys) {
    const v = (value as Record<string, unknown>)[key];
    // Positions go into queries: plain text only (no NUL for Postgres, no lone surrogate for either).
    if (typeof v !== "string" || v.length > 512 || !isPlainText(v)) throw bad();
    out[key] = v;
  }
  return out;
}

/**
 * Runs `fetch` for one more item than the page holds: if it comes back, there is a next page,
 * which starts after the page's last item.
 */
export async function paged<T>(limit: number, fetch: (take: number) => Promise<T[]>, positionOf: (last: T) => string): Promise<Page<T>> {
  const rows = await fetch(limit + 1);
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? positionOf(items.at(-1)!) : null };
}
