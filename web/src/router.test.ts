import { describe, expect, it } from "vitest";
import { parseRoute } from "./router";

describe("parseRoute", () => {
  it("maps paths to pages", () => {
    expect(parseRoute("/")).toEqual({ page: "runs" });
    expect(parseRoute("/runs")).toEqual({ page: "runs" });
    expect(parseRoute("/runs/abc%2F1")).toEqual({ page: "run", id: "abc/1" });
    expect(parseRoute("/sessions/ses_1/")).toEqual({ page: "session", id: "ses_1" });
    expect(parseRoute("/dashboard")).toEqual({ page: "dashboard" });
    expect(parseRoute("/nope/a/b")).toEqual({ page: "missing", path: "/nope/a/b" });
  });
});
