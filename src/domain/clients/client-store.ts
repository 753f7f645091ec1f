// What the client registry needs from storage (implemented in storage/prisma).

export interface ClientRecord {
  id: string;
  name: string;
  type: "public" | "confidential";
  secretHash: string | null;
  grantTypes: string[];
  scopes: string[];
  /** audiences this client may request tokens for (client_credentials, RFC 8707 `resource`) */
  audiences: string[];
  /**
   * resource identifiers this client *is*: as a resource server it may introspect tokens whose
   * `aud` is one of them (RFC 7662 §4). Being allowed to call an API is not being that API.
   */
  resources: string[];
  accessTokenTtl: number | null;
  refreshTokenTtl: number | null;
  createdAt: Date;
  disabledAt: Date | null;
}

export class ClientExistsError extends Error {
  constructor() {
    super("client id already exists");
    this.name = "ClientExistsError";
  }
}

/** What an operator may change on a client (the admin API's PATCH, the CLI's update). */
export type ClientPatch = Partial<Pick<ClientRecord, "name" | "grantTypes" | "scopes" | "audiences" | "resources" | "accessTokenTtl" | "refreshTokenTtl">>;

export interface ClientStore {
  findById(id: string): Promise<ClientRecord | null>;
  /** throws ClientExistsError when the id is taken */
  create(client: ClientRecord): Promise<void>;
  list(): Promise<ClientRecord[]>;
  /** clients in id order after `after` (exclusive; null: from the start), at most `limit` */
  page(after: string | null, limit: number): Promise<ClientRecord[]>;
  /** applies `patch`; the client as it is now, or null when there is no such client */
  update(id: string, patch: ClientPatch): Promise<ClientRecord | null>;
  /** clears disabledAt; false when there is no such client */
  enable(id: string): Promise<boolean>;
  /** false when there is no such client */
  disable(id: string, at: Date): Promise<boolean>;
  /** false when there is no such client */
  setSecretHash(id: string, secretHash: string): Promise<boolean>;
  /**
   * Creates the client, or brings an existing one's name, type, grant types, scopes and
   * audiences in line (config-owned clients such as the first-party web client).
   */
  upsert(client: ClientRecord): Promise<ClientRecord>;
}
