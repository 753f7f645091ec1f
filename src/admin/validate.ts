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

export function clientName(value: string): string {
  const name = value.trim();
  if (name.length === 0 || name.length > 200 || /[\p{Cc}]/u.test(name)) throw new InvalidField("name", "name is 1 to 200 characters, without control characters.");
  return name;
}
