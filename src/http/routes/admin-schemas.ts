// The admin API's request and response schemas (they are its OpenAPI description too).
import { errorReplies, noBody } from "../schemas.ts";

const dateTime = { type: "string", format: "date-time" } as const;
const nullableDateTime = { type: ["string", "null"], format: "date-time" } as const;
const stringList = (description: string) => ({ type: "array", items: { type: "string", minLength: 1, maxLength: 256 }, maxItems: 100, description }) as const;
const ttl = (description: string) => ({ type: ["integer", "null"], minimum: 1, maximum: 366 * 86400, description }) as const;

/** An id in a path: visible ASCII, no slash. */
const idParam = (name: string, description: string) =>
  ({
    type: "object",
    required: [name],
    additionalProperties: false,
    properties: { [name]: { type: "string", pattern: "^[\\x21-\\x2E\\x30-\\x7E]{1,200}$", description } },
  }) as const;

export const clientIdParams = idParam("id", "A client_id.");
export const userIdParams = idParam("id", "A user id.");
export const sessionIdParams = idParam("id", "A session id.");
export const kidParams = idParam("kid", "A key id (kid).");

const pageQuery = {
  cursor: { type: "string", maxLength: 1024, description: "Where the previous page ended (its next_cursor)." },
  limit: { type: "string", pattern: "^[0-9]{1,4}$", description: "Page size, 1 to 200 (default 50)." },
} as const;

export const clientsQuery = { type: "object", additionalProperties: false, properties: { ...pageQuery } } as const;
export const usersQuery = {
  type: "object",
  additionalProperties: false,
  properties: { ...pageQuery, email: { type: "string", maxLength: 254, description: "Only users whose email contains this (case-insensitive)." } },
} as const;
export const auditQuery = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...pageQuery,
    type: { type: "string", maxLength: 200, description: "Event type, e.g. login.failed, client.created." },
    user_id: { type: "string", maxLength: 200 },
    client_id: { type: "string", maxLength: 200 },
    from: { type: "string", maxLength: 64, description: "RFC 3339 date-time: events at or after it." },
    to: { type: "string", maxLength: 64, description: "RFC 3339 date-time: events before it." },
  },
} as const;

const clientFields = {
  name: { type: "string", minLength: 1, maxLength: 200 },
  grant_types: stringList("password, refresh_token, client_credentials."),
  scopes: stringList("Scopes the client may ask for (RFC 6749 §3.3 scope-tokens)."),
  audiences: stringList("Audiences the client may get tokens for (client_credentials `resource`, RFC 8707)."),
  resources: stringList("Resource identifiers the client is, as a resource server: it may introspect tokens meant for them."),
  access_token_ttl: ttl("Access token lifetime in seconds; null: ACCESS_TOKEN_TTL."),
  refresh_token_ttl: ttl("Session lifetime in seconds; null: REFRESH_TOKEN_TTL."),
} as const;

export const createClientBody = {
  type: "object",
  required: ["name", "type", "grant_types"],
  additionalProperties: false,
  properties: { ...clientFields, type: { type: "string", enum: ["confidential", "public"] } },
} as const;

export const updateClientBody = {
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: clientFields,
} as const;

const client = {
  type: "object",
  required: ["client_id", "name", "type", "grant_types", "scopes", "audiences", "resources", "access_token_ttl", "refresh_token_ttl", "created_at", "disabled_at"],
  properties: {
    client_id: { type: "string" },
    ...clientFields,
    type: { type: "string", enum: ["confidential", "public"] },
    created_at: dateTime,
    disabled_at: nullableDateTime,
  },
} as const;

export const clientReply = { 200: client, ...errorReplies } as const;
export const createdClientReply = {
  201: {
    ...client,
    description: "The client; for a confidential one, its client_secret, shown only now and stored only as a hash.",
    properties: { ...client.properties, client_secret: { type: "string" } },
  },
  ...errorReplies,
} as const;
export const secretReply = {
  200: {
    type: "object",
    required: ["client_id", "client_secret"],
    description: "The new secret, shown only now; the old one stops working within CLIENT_CACHE_TTL.",
    properties: { client_id: { type: "string" }, client_secret: { type: "string" } },
  },
  ...errorReplies,
} as const;
const nextCursor = { type: ["string", "null"], description: "Pass as `cursor` for the next page; null on the last page." } as const;
export const clientsReply = {
  200: { type: "object", required: ["clients", "next_cursor"], properties: { clients: { type: "array", items: client }, next_cursor: nextCursor } },
  ...errorReplies,
} as const;

const roles = stringList("The user's roles (access tokens carry them from the next login or refresh).");

export const createUserBody = {
  type: "object",
  required: ["email", "password"],
  additionalProperties: false,
  properties: { email: { type: "string", minLength: 1, maxLength: 320 }, password: { type: "string", minLength: 1, maxLength: 4096 }, roles },
} as const;
export const rolesBody = { type: "object", required: ["roles"], additionalProperties: false, properties: { roles } } as const;
export const passwordBody = {
  type: "object",
  required: ["password"],
  additionalProperties: false,
  properties: { password: { type: "string", minLength: 1, maxLength: 4096 } },
} as const;

const user = {
  type: "object",
  required: ["id", "email", "roles", "created_at", "disabled_at"],
  properties: { id: { type: "string" }, email: { type: "string" }, roles: { type: "array", items: { type: "string" } }, created_at: dateTime, disabled_at: nullableDateTime },
} as const;
export const userReply = { 200: user, ...errorReplies } as const;
export const createdUserReply = { 201: user, ...errorReplies } as const;
export const usersReply = {
  200: { type: "object", required: ["users", "next_cursor"], properties: { users: { type: "array", items: user }, next_cursor: nextCursor } },
  ...errorReplies,
} as const;
export const userSessionsRevokedReply = {
  200: {
    type: "object",
    required: ["user", "sessions_revoked"],
    properties: { user, sessions_revoked: { type: "integer", description: "Sessions this request ended." } },
  },
  ...errorReplies,
} as const;
export const sessionsRevokedReply = {
  200: { type: "object", required: ["sessions_revoked"], properties: { sessions_revoked: { type: "integer" } } },
  ...errorReplies,
} as const;

const session = {
  type: "object",
  required: ["id", "user_id", "client_id", "scope", "created_at", "last_used_at", "expires_at"],
  properties: {
    id: { type: "string" },
    user_id: { type: "string" },
    client_id: { type: "string" },
    scope: { type: "string" },
    created_at: dateTime,
    last_used_at: dateTime,
    expires_at: { type: "object", required: ["idle", "absolute"], properties: { idle: dateTime, absolute: dateTime } },
    user_agent: { type: "string" },
    address: { type: "string" },
  },
} as const;
export const sessionsReply = {
  200: { type: "object", required: ["sessions"], properties: { sessions: { type: "array", items: session, description: "Live sessions, newest first (at most 1000)." } } },
  ...errorReplies,
} as const;
export const sessionRevokedReply = { 204: noBody("Revoked (or already revoked)."), ...errorReplies } as const;

/** The key commands' JSON, as `npm run cli -- keys ... --json` prints it. */
const keysDocument = (description: string) => ({ type: "object", description, additionalProperties: true }) as const;
export const keysReply = { 200: keysDocument("The key store and every key: kid, alg, state, dates."), ...errorReplies } as const;
export const keyActionsReply = { 200: keysDocument("What was done: the key actions (and for a scheduled rotation, what was pruned)."), ...errorReplies } as const;
export const keyRevokedReply = { 200: keysDocument("The revoked key, what was done, and until when verifiers may still accept its tokens."), ...errorReplies } as const;

const auditEvent = {
  type: "object",
  required: ["id", "type", "at", "user_id", "client_id", "session_id", "details"],
  properties: {
    id: { type: "string" },
    type: { type: "string" },
    at: dateTime,
    user_id: { type: ["string", "null"] },
    client_id: { type: ["string", "null"] },
    session_id: { type: ["string", "null"] },
    details: { type: "object", additionalProperties: true, description: "Event details (never a secret); `actor` names who made an operator's change." },
  },
} as const;
export const auditReply = {
  200: { type: "object", required: ["events", "next_cursor"], properties: { events: { type: "array", items: auditEvent, description: "Newest first." }, next_cursor: nextCursor } },
  ...errorReplies,
} as const;
