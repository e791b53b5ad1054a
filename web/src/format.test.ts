import { describe, expect, it } from "vitest";
import { clip, cost, runDuration, seconds, tokens } from "./format";

describe("format", () => {
  it("says unknown for a cost without a price, never $0", () => {
    expect(cost(null)).toBe("unknown");
    expect(cost(undefined)).toBe("unknown");
    expect(cost(0)).toBe("$0");
    expect(cost(0.0841)).toBe("$0.08");
    expect(cost(0.0012)).toBe("$0.0012");
    expect(cost(1.5, 2)).toBe("≥ $1.50 (+2 unpriced)");
  });
  it("shortens tokens and durations", () => {
    expect(tokens(950)).toBe("950");
    expect(tokens(48_210)).toBe("48k");
    expect(tokens(5_300_000)).toBe("5.30M");
    expect(seconds(0.25)).toBe("250 ms");
    expect(seconds(75)).toBe("1 min 15 s");
    expect(seconds(null)).toBe("—");
  });
  it("measures a run to its end, or to now while it goes on", () => {
    expect(runDuration({ created_at: 10, finished_at: 14, status: "completed" }, 100)).toBe(4);
    expect(runDuration({ created_at: 10, finished_at: null, status: "running" }, 100)).toBe(90);
    expect(runDuration({ created_at: 10, finished_at: null, status: "interrupted" }, 100)).toBeNull();
  });
  it("clips long text", () => {
    expect(clip("abcdef", 3)).toEqual({ text: "abc", clipped: true });
    expect(clip("ab", 3)).toEqual({ text: "ab", clipped: false });
  });
});
