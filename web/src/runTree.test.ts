import { describe, expect, it } from "vitest";
import fanout from "./fixtures/fanout-run.json";
import { iterations, parentOf, RunTree, visibleRows, type RunEvent } from "./runTree";

// A run recorded from `rlm serve` with the simulator's fan-out policy: one iteration, one
// cell, sixteen sub-calls.
const recorded = fanout as unknown as Array<{ seq: number; event: RunEvent }>;

const base = { schema_version: 1, run_id: "R", depth: 0, ts: 1 };
let seq = 0;
const ev = (e: Record<string, unknown>) => ({ seq: seq++, event: { ...base, ...e } as unknown as RunEvent });

describe("parentOf", () => {
  it("strips the last segment; epochs hang under the root", () => {
    expect(parentOf("r/1/0")).toBe("r/1");
    expect(parentOf("r/0")).toBe("r");
    expect(parentOf("r~1/7")).toBe("r");
    expect(parentOf("r")).toBeNull();
  });
});

describe("RunTree from a recorded run", () => {
  const tree = new RunTree();
  tree.applyAll(recorded);

  it("nests iteration, root turn, cell and sub-calls", () => {
    const root = tree.root;
    expect(root.status).toBe("ok");
    expect(root.children).toEqual(["r#1"]);
    const it1 = tree.nodes.get("r#1")!;
    expect(it1.children).toEqual(["r/0", "r/1"]);
    expect(tree.nodes.get("r/0")!.kind).toBe("root_turn");
    const cell = tree.nodes.get("r/1")!;
    expect(cell.kind).toBe("cell");
    expect(cell.children).toHaveLength(16);
    expect(cell.children.every((id) => tree.nodes.get(id)!.kind === "llm" && tree.nodes.get(id)!.status === "ok")).toBe(true);
    expect(cell.output).toContain("answers 16 errors 0");
  });

  it("sums tokens up the tree and keeps unknown prices unknown", () => {
    const s = tree.summary;
    expect(s.finished).toBe(true);
    expect(s.stopReason).toBe("final");
    expect(tree.root.total.input).toBe(s.inputTokens);
    expect(tree.root.total.output).toBe(s.outputTokens);
    expect(tree.root.total.calls).toBe(17);
    expect(tree.root.total.unpriced).toBe(17);
    expect(s.costUsd).toBeNull();
    expect(s.answer).toBe("elapsed 0.2137 answers 16 errors 0");
  });

  it("ignores events it has applied already", () => {
    const before = tree.root.total.input;
    tree.applyAll(recorded.slice(0, 10));
    expect(tree.root.total.input).toBe(before);
    expect(tree.applied).toBe(recorded.length);
  });

  it("flattens visible rows and hides what a collapsed node holds", () => {
    expect(visibleRows(tree, new Set()).map((r) => r.node.id).slice(0, 5)).toEqual(["r", "r#1", "r/0", "r/1", "r/1/0"]);
    expect(visibleRows(tree, new Set()).length).toBe(tree.nodes.size);
    const rows = visibleRows(tree, new Set(["r/1"]));
    expect(rows.map((r) => r.node.id)).toEqual(["r", "r#1", "r/0", "r/1"]);
    expect(rows[3]!.expanded).toBe(false);
    expect(rows.map((r) => r.depth)).toEqual([0, 1, 2, 2]);
  });

  it("lists the iterations for the notebook", () => {
    const its = iterations(tree);
    expect(its).toHaveLength(1);
    expect(its[0]!.turn!.id).toBe("r/0");
    expect(its[0]!.cells.map((c) => c.id)).toEqual(["r/1"]);
  });
});

describe("RunTree edge cases", () => {
  it("nests a child RLM's iterations under its sub-call, and marks failures", () => {
    const t = new RunTree();
    t.applyAll([
      ev({ type: "run_started", node_id: "", question: "q", model: "m", sub_model: "s" }),
      ev({ type: "iteration_started", node_id: "r", iteration: 1 }),
      ev({ type: "cell_started", node_id: "r/1", iteration: 1, cell_index: 0, code: "rlm_query('x')", instruction: null }),
      ev({ type: "subcall_started", node_id: "r/1/0", call_id: "c1", kind: "rlm", prompt_chars: 1 }),
      ev({ type: "iteration_started", node_id: "r/1/0", depth: 1, iteration: 1 }),
      ev({ type: "model_call_started", node_id: "r/1/0/0", depth: 1, role: "root", model: "s", call_id: "c2", prompt_chars: 5 }),
      ev({ type: "model_call_failed", node_id: "r/1/0/0", depth: 1, role: "root", model: "s", call_id: "c2", error: "boom", kind: "server" }),
      ev({ type: "subcall_finished", node_id: "r/1/0", call_id: "c1", kind: "rlm", ok: false, result_chars: 0, error: "ChildRunFailed" }),
      ev({ type: "cell_blocked", node_id: "r/2", iteration: 1, cell_index: 1, reason: "network", plugin: "guard", category: "", severity: 3, details: [] }),
    ]);
    const child = t.nodes.get("r/1/0")!;
    expect(child.kind).toBe("rlm");
    expect(child.status).toBe("failed");
    expect(child.children).toEqual(["r/1/0#1"]);
    const turn = t.nodes.get("r/1/0/0")!;
    expect(turn.parent).toBe("r/1/0#1");
    expect(turn.status).toBe("failed");
    expect(turn.error).toBe("server: boom");
    expect(t.nodes.get("r/2")!.status).toBe("blocked");
    expect(iterations(t).map((i) => i.rlm.id)).toEqual(["r", "r/1/0"]);
  });

  it("counts a call reported again on resume once, and closes what was open when the run stops", () => {
    const t = new RunTree();
    const done = { type: "model_call_finished", node_id: "r/0", role: "root", model: "m", call_id: "c1", input_tokens: 100, output_tokens: 10, cached_tokens: 0, cost_usd: 0.5, latency_s: 1, response_chars: 9, finish_reason: "stop", from_cache: false };
    t.applyAll([
      ev({ type: "run_started", node_id: "", question: "q", model: "m", sub_model: "m" }),
      ev({ type: "iteration_started", node_id: "r", iteration: 1 }),
      ev(done),
      ev({ type: "cell_started", node_id: "r/1", iteration: 1, cell_index: 0, code: "x", instruction: null }),
      ev({ type: "run_finished", node_id: "", stop_reason: "cancelled", detail: "", iterations: 1, input_tokens: 100, output_tokens: 10, cost_usd: 0.5, duration_s: 2 }),
      ev({ type: "run_started", node_id: "", question: "q", model: "m", sub_model: "m" }),
      ev({ type: "iteration_started", node_id: "r", iteration: 1 }),
      ev(done),
    ]);
    expect(t.nodes.get("r/1")!.status).toBe("failed");
    t.applyAll([ev({ type: "cell_started", node_id: "r/1", iteration: 1, cell_index: 0, code: "x", instruction: null })]);
    expect(t.nodes.get("r/1")!.status).toBe("running");
    expect(t.nodes.get("r/1")!.error).toBeNull();
    expect(t.root.error).toBeNull();
    expect(t.summary.stopReason).toBeNull();
    expect(t.root.total.input).toBe(100);
    expect(t.root.total.cost).toBe(0.5);
    expect(t.root.total.calls).toBe(1);
    expect(t.summary.finished).toBe(false);
  });

  it("holds a run of 5,000 sub-calls and shows a collapsed one as a few rows", () => {
    const t = new RunTree();
    const events = [ev({ type: "run_started", node_id: "", question: "q", model: "m", sub_model: "m" }), ev({ type: "iteration_started", node_id: "r", iteration: 1 }), ev({ type: "cell_started", node_id: "r/1", iteration: 1, cell_index: 0, code: "x", instruction: null })];
    for (let i = 0; i < 5000; i++) events.push(ev({ type: "subcall_started", node_id: `r/1/${i}`, call_id: `c${i}`, kind: "llm", prompt_chars: 1 }));
    t.applyAll(events);
    expect(t.nodes.get("r/1")!.children).toHaveLength(5000);
    expect(t.nodes.get("r/1/4999")!.status).toBe("queued");
    expect(visibleRows(t, new Set()).length).toBe(5003);
    expect(visibleRows(t, new Set(["r/1"])).length).toBe(3);
  });
});
