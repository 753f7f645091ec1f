// The real clock in FakeClock's clothes: for in-process issuers (startIssuer's `clock` option)
// in tests that measure wall-clock behaviour (revocation latency, grace windows waited out in
// real time), where the issuer's timers, the verifier kit and the test must all see one time.
import { FakeClock } from "./fake-clock.ts";

export class WallClock extends FakeClock {
  override now(): Date {
    return new Date();
  }
  override advance(): void {
    throw new Error("WallClock follows real time: it cannot be advanced");
  }
  override set(): void {
    throw new Error("WallClock follows real time: it cannot be set");
  }
}
