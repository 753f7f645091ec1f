// The error both key stores (file-key-store.ts, prisma/database-key-store.ts) throw for a key
// store that cannot be used as it is; the server refuses to start with its message.
export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyStoreError";
  }
}
