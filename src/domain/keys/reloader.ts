// Keeps an instance's KeyRing in step with the key store: every KEYS_RELOAD_INTERVAL it reads
// the store and swaps in the new set if anything changed (a rotation done by the script, the
// CLI or another instance). Private keys are imported once per kid.
import type { KeyStore } from "./key-store.ts";
import type { StoredKey } from "./signing-key.ts";
import { toSigningKey } from "./signing-key.ts";
import type { KeyRing } from "./key-ring.ts";
import type { SigningKey } from "./signing-key.ts";

const fingerprint = (keys: readonly Pick<StoredKey, "kid" | "state" | "activatedAt" | "retiredAt">[]) =>
  keys
    .map((k) => `${k.kid}:${k.state}:${k.activatedAt?.getTime() ?? ""}:${k.retiredAt?.getTime() ?? ""}`)
    .sort()
    .join(",");

export class KeyReloader {
  #timer: NodeJS.Timeout | undefined;
  #imported = new Map<string, SigningKey>();
  #last = "";

  constructor(
    private readonly store: KeyStore,
    private readonly ring: KeyRing,
    private readonly onError: (err: Error) => void = () => undefined,
    private readonly onChange: (keys: readonly SigningKey[]) => void = () => undefined,
  ) {}

  /** Reads the store; returns true when the published or signing set changed. */
  async reload(): Promise<boolean> {
    const stored = await this.store.list();
    const fp = fingerprint(stored);
    if (fp === this.#last) return false;
    const keys: SigningKey[] = [];
    for (const k of stored) {
      const cached = this.#imported.get(k.kid);
      const imported = cached ?? (await toSigningKey(k));
      this.#imported.set(k.kid, imported);
      keys.push({ ...imported, state: k.state, activatedAt: k.activatedAt, retiredAt: k.retiredAt });
    }
    for (const kid of [...this.#imported.keys()]) if (!stored.some((k) => k.kid === kid)) this.#imported.delete(kid);
    this.ring.replace(keys);
    this.#last = fp;
    this.onChange(keys);
    return true;
  }

  start(intervalSeconds: number): void {
    this.stop();
    this.#timer = setInterval(() => {
      // A failed reload keeps the current keys: they stay valid until the next success.
      this.reload().catch((err: Error) => this.onError(err));
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
