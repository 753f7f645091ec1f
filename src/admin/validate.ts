// The values an operator sets, checked once for the CLI and the admin API alike. Each failure
// names the field (its API name; the CLI prints the matching flag).
import { InvalidField } from "../domain/errors.ts";
import { GRANT_TYPES, isGrantType, type GrantType } from "../domain/clients/grant-types.ts";
import { isScopeToken } from "../domain/scope.ts";

const LIST_MAX = 100;
/** Visible ASCII, no space (lists are stored space-separated): audiences, resources, roles. */
const WORD = /^[\x21-\x7E]{1,256}$/;

function list(field: string, values: readonly string[]): string[] {
  if (values.length > LIST_MAX) throw new InvalidField(field, `${field} has more than ${LIST_MAX} members.`);
  return [...new Set(values)];
}

export function grantTypes(values: readonly string[]): GrantType[] {
  const v = list("grant_types", values);
  if (v.length === 0) throw new InvalidField("grant_types", `grant_types is required (${GRANT_TYPES.join(", ")}).`);
  const unknown = v.filter((g) => !isGrantType(g));
  if (unknown.length > 0) throw new InvalidField("grant_types", `unknown grant type(s): ${unknown.join(", ").slice(0, 200)}; expected ${GRANT_TYPES.join(", ")}.`);
  return v as GrantType[];
}

export function scopes(values: readonly string[]): string[] {
  const v = list("scopes", values);
  const bad = v.filter((s) => !isScopeToken(s) || s.length > 256);
  if (bad.length > 0) throw new InvalidField("scopes", `invalid scope name(s): ${bad.join(" ").slice(0, 200)} (RFC 6749 §3.3 scope-token).`);
  return v;
}

export function words(field: string, values: readonly string[]): string[] {
  const v = list(field, values);
  if (v.some((w) => !WORD.test(w))) throw new InvalidField(field, `${field} members are 1 to 256 visible ASCII characters, without spaces.`);
  return v;
}

/** A lifetime in seconds (up to a year), or null for the issuer's default. */
export function ttl(field: string, value: number | null): number | null {
  if (value === null) return null;
  if (!Number.isInteger(value) || value < 1 || value > 366 * 86400) throw new InvalidField(field, `${field} is a number of seconds from 1 to ${366 * 86400}, or null for the default.`);
  return value;
}

/**
 * Text a database can store as given: well-formed Unicode (no lone UTF-16 surrogate, which
 * neither database's UTF-8 holds) and no control characters (Postgres text refuses NUL).
 */
export const isPlainText = (value: string): boolean => !/[\p{Cc}\p{Cs}]/u.test(value);

/** A free-text filter or id (1 to `max` characters of plain text), or InvalidField. */
export function filterText(field: string, value: string | undefined, max = 200): string | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > max || !isPlainText(value)) throw new InvalidField(field, `${field} is 1 to ${max} characters, without control characters.`);
  return value;
}

export function clientName(value: string): string {
  const name = value.trim();
  if (name.length === 0 || name.length > 200 || !isPlainText(name)) throw new InvalidField("name", "name is 1 to 200 characters, without control characters.");
  return name;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/i;
/** The instants the admin API takes and both databases store: years 1970 to 9999. */
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(10000, 0, 1) - 1;

/** An RFC 3339 date-time (§5.6) that exists (no February 30th), in years 1970-9999; else InvalidField. */
export function instant(field: string, value: string): Date {
  const bad = () => new InvalidField(field, `${field} is an RFC 3339 date-time in years 1970-9999, e.g. 2026-01-31T12:00:00Z.`);
  const m = RFC3339.exec(value);
  if (!m) throw bad();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) throw bad();
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) throw bad();
  const at = new Date(value);
  if (Number.isNaN(at.getTime()) || at.getTime() < EARLIEST || at.getTime() > LATEST) throw bad();
  return at;
}
