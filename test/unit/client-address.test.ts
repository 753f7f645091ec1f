// The address a client is counted against by the rate limits and the login throttle.
import { expect, it } from "vitest";
import { addressKey } from "../../src/http/client-address.ts";

it.each([
  ["203.0.113.9", "203.0.113.9"],
  ["::ffff:203.0.113.9", "203.0.113.9"],
  // IPv6 by /64: every address of one network is one key.
  ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"],
  ["2001:DB8:1:2::9", "2001:db8:1:2::"],
  ["2001:db8::1", "2001:db8::"],
  ["::1", "::"],
  ["fe80::1%eth0", "fe80::"],
  // NAT64 (64:ff9b::/96): the IPv4 client behind the translator.
  ["64:ff9b::192.0.2.1", "192.0.2.1"],
  ["64:ff9b::c000:221", "192.0.2.33"],
  // Some proxies (Azure Application Gateway) write the client's port into X-Forwarded-For: the
  // port is the client's to choose, a new one per connection, and is not part of its address.
  ["203.0.113.9:51234", "203.0.113.9"],
  ["[2001:db8:1:2::9]:443", "2001:db8:1:2::"],
  ["[2001:db8:1:2::9]", "2001:db8:1:2::"],
  ["[::ffff:203.0.113.9]:8080", "203.0.113.9"],
])("addressKey(%s) = %s", (ip, expected) => {
  expect(addressKey(ip)).toBe(expected);
});

it("two addresses of one /64 share a key, the next /64 does not", () => {
  expect(addressKey("2001:db8:1:2:aaaa::9")).toBe(addressKey("2001:db8:1:2::1"));
  expect(addressKey("2001:db8:1:3::1")).not.toBe(addressKey("2001:db8:1:2::1"));
});
