import { describe, expect, it } from "vitest";
import { highlight } from "./highlight";

describe("highlight", () => {
  it("marks keywords, strings, comments, numbers and calls, and loses no character", () => {
    const code = 'def f(x):\n    # note\n    return llm_query(f"n={x}") + 42\n';
    const tokens = highlight(code);
    expect(tokens.map((t) => t.text).join("")).toBe(code);
    const kinds = Object.fromEntries(tokens.filter((t) => t.kind !== "plain").map((t) => [t.text, t.kind]));
    expect(kinds).toMatchObject({ def: "kw", return: "kw", "# note": "com", 'f"n={x}"': "str", "42": "num", f: "fn", llm_query: "builtin" });
  });

  it("treats an unterminated triple-quoted string as a string to the end", () => {
    const tokens = highlight('x = """open\nstill');
    expect(tokens.at(-1)).toEqual({ kind: "str", text: '"""open\nstill' });
  });
});
