// http/empty-json.ts repeatedMember: the first top-level member of a JSON object named twice,
// compared as decoded, on valid JSON of every shape a client can send.
import { describe, expect, it } from "vitest";
import { repeatedMember } from "../../src/http/empty-json.ts";

describe("repeatedMember", () => {
  it("finds a top-level member named twice, however it is spelt", () => {
    expect(repeatedMember('{"a":"1","a":"2"}')).toBe("a");
    expect(repeatedMember('{"password":"x","pass\\u0077ord":"y"}')).toBe("password");
    expect(repeatedMember(' \n\t{ "a" : 1 ,\r\n "b":2, "a" :3 } ')).toBe("a");
    expect(repeatedMember('\uFEFF{"a":1,"a":2}')).toBe("a");
    expect(repeatedMember('{"":1,"":2}')).toBe("");
    expect(repeatedMember('{"a\\"b":1,"a\\u0022b":2}')).toBe('a"b');
  });

  it("looks past values of every kind to the next member", () => {
    const values = ['"x"', '"a\\"b,c}{["', '"\\\\"', '"\\\\\\""', "12.5e-3", "true", "null", "[]", "{}", '[1,"]",{"a":[{}]}]', '{"a":1,"a":2,"x":"}"}', '"\\u007d"'];
    for (const v of values) {
      expect(repeatedMember(`{"a":${v},"b":1,"a":2}`), v).toBe("a");
      expect(repeatedMember(`{"a":${v},"b":1}`), v).toBeNull();
    }
  });

  it("a member repeated only inside a value, or no object at all: null", () => {
    expect(repeatedMember('{"a":{"b":1,"b":2}}')).toBeNull();
    expect(repeatedMember('{"a":[{"b":1},{"b":2}]}')).toBeNull();
    expect(repeatedMember("{}")).toBeNull();
    expect(repeatedMember("[1,2]")).toBeNull();
    expect(repeatedMember('"a"')).toBeNull();
  });
});
