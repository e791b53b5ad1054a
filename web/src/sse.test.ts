import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses events split across chunks, with ids, types and heartbeats", () => {
    const p = new SseParser();
    expect(p.feed("id: 0\nevent: run_started\nda")).toEqual([]);
    const got = p.feed('ta: {"a":1}\n\n: ping\n\nid: 1\r\nevent: final\r\ndata: x\r\ndata: y\r\n\r\n');
    expect(got).toEqual([
      { id: "0", event: "run_started", data: '{"a":1}' },
      { id: "1", event: "final", data: "x\ny" },
    ]);
    expect(p.lastId).toBe("1");
  });

  it("keeps the last id across events without one and defaults the type", () => {
    const p = new SseParser();
    p.lastId = "41";
    expect(p.feed("data: z\n\n")).toEqual([{ id: "41", event: "message", data: "z" }]);
  });
});
