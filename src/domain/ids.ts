import { randomBytes, randomUUID } from "node:crypto";

/** Opaque row ids and session ids. */
export const newId = (): string => randomUUID();

/** 256 bits from the CSPRNG, base64url (43 characters). */
export const randomToken = (): string => randomBytes(32).toString("base64url");
