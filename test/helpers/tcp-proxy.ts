// A TCP proxy between the issuer and a server it depends on (Postgres, Redis), so a test can pull
// the plug, freeze the line, and put it back on the same port.
import net from "node:net";

/**
 * A TCP proxy to `target` that can be taken down (connections refused), frozen (connections
 * accepted, nothing answered: a partition or a hung host) and brought back on the same port.
 */
export class TcpProxy {
  port = 0;
  #server: net.Server | undefined;
  #frozen = false;
  readonly #sockets = new Set<net.Socket>();

  constructor(private readonly target: { host: string; port: number }) {}

  get connections(): number {
    return this.#sockets.size;
  }

  #track(s: net.Socket): void {
    this.#sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => this.#sockets.delete(s));
  }

  async up(): Promise<void> {
    this.thaw();
    if (this.#server) return;
    const server = net.createServer((client) => {
      this.#track(client);
      if (this.#frozen) return; // accepted, never answered
      const upstream = net.connect(this.target.port, this.target.host);
      this.#track(upstream);
      // Forward by hand (not pipe) so a freeze can swallow traffic in both directions.
      client.on("data", (d: Buffer) => {
        if (!this.#frozen) upstream.write(d);
      });
      upstream.on("data", (d: Buffer) => {
        if (!this.#frozen) client.write(d);
      });
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  /** The database "crashes": no new connections, every open one cut. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#dropAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The database stops answering: connections stay open (and new ones are accepted), silent. */
  freeze(): void {
    this.#frozen = true;
  }

  /** End of a freeze: the connections that lived through it are reset, new ones work again. */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    this.#dropAll();
  }

  #dropAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }
}

