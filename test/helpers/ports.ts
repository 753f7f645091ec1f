// Shared by test/ and bench/ (no vitest imports here).
import net from "node:net";

/** A TCP port free on 127.0.0.1 right now: for a server whose URL must be known before it listens. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
