// A small Python highlighter: enough to read a cell at a glance, no grammar dependency.
export type TokenKind = "kw" | "str" | "com" | "num" | "fn" | "builtin" | "plain";
export type Token = { kind: TokenKind; text: string };

const KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case".split(" "),
);
const BUILTINS = new Set(
  "print len range str int float list dict set tuple sorted enumerate zip map filter sum min max abs any all open isinstance type repr llm_query llm_query_batched rlm_query rlm_query_batched FINAL FINAL_VAR SUBMIT context re json".split(" "),
);

// strings (triple first, with optional prefixes), comments, numbers, names
const TOKEN =
  /([rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))|(#[^\n]*)|(\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)/g;

export function highlight(code: string): Token[] {
  const out: Token[] = [];
  let last = 0;
  const push = (kind: TokenKind, text: string) => {
    if (!text) return;
    const prev = out[out.length - 1];
    if (prev && prev.kind === kind && kind === "plain") prev.text += text;
    else out.push({ kind, text });
  };
  for (const m of code.matchAll(TOKEN)) {
    const at = m.index ?? 0;
    push("plain", code.slice(last, at));
    const [text, str, com, num, name] = m;
    if (str) push("str", text);
    else if (com) push("com", text);
    else if (num) push("num", text);
    else if (name) {
      if (KEYWORDS.has(name)) push("kw", name);
      else if (BUILTINS.has(name)) push("builtin", name);
      else if (code[at + name.length] === "(") push("fn", name);
      else push("plain", name);
    }
    last = at + text.length;
  }
  push("plain", code.slice(last));
  return out;
}
