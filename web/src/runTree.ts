// The execution tree of a run, built from its events as they arrive. Mutable on purpose:
// a run can have thousands of nodes and events arrive in bursts, so a batch updates the
// nodes in place and bumps `version`; views re-read the rows they show.
import type { components } from "./gen/events";

type E = components["schemas"];
export type RunEvent = E["Event"];

export type NodeKind =
  | "run"
  | "iteration"
  | "root_turn"
  | "cell"
  | "llm"
  | "rlm"
  | "tool"
  | "digest"
  | "capsule";
export type NodeStatus = "queued" | "running" | "ok" | "failed" | "blocked";

export type Usage = { input: number; output: number; cached: number; cost: number; unpriced: number; calls: number };

export type TreeNode = {
  id: string;
  kind: NodeKind;
  label: string;
  parent: string | null;
  children: string[];
  status: NodeStatus;
  model: string | null;
  /** this node's own model call */
  own: Usage;
  /** its own and every descendant's calls */
  total: Usage;
  latency: number | null;
  startedTs: number | null;
  finishedTs: number | null;
  iteration?: number;
  cellIndex?: number;
  code?: string;
  instruction?: string | null;
  output?: string;
  outputChars?: number;
  promptChars?: number;
  responseChars?: number;
  resultChars?: number;
  error?: string | null;
  notes: string[];
};

export type RunSummary = {
  question: string;
  model: string;
  subModel: string;
  answer: string | null;
  fields: Record<string, unknown> | null;
  stopReason: string | null;
  detail: string;
  iterations: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
  durationS: number | null;
  finished: boolean;
};

const zero = (): Usage => ({ input: 0, output: 0, cached: 0, cost: 0, unpriced: 0, calls: 0 });
const ROOT = "r";

/** The parent of a node id: its path less the last segment; an epoch's ``r~1`` is ``r``. */
export function parentOf(id: string): string | null {
  if (id === ROOT || id === "") return null;
  const slash = id.lastIndexOf("/");
  if (slash < 0) return ROOT;
  const up = id.slice(0, slash);
  return /^r~\d+$/.test(up) ? ROOT : up;
}

function iterationId(rlm: string, n: number): string {
  return `${rlm}#${n}`;
}

export class RunTree {
  readonly nodes = new Map<string, TreeNode>();
  /** the iteration each RLM node is in now: root turns and cells go under it */
  private current = new Map<string, number>();
  version = 0;
  applied = 0;
  lastSeq = -1;
  summary: RunSummary = {
    question: "",
    model: "",
    subModel: "",
    answer: null,
    fields: null,
    stopReason: null,
    detail: "",
    iterations: 0,
    inputTokens: 0,
    outputTokens: 0,
    costUsd: null,
    durationS: null,
    finished: false,
  };

  constructor() {
    this.make(ROOT, "run", "run", null);
  }

  get root(): TreeNode {
    return this.nodes.get(ROOT)!;
  }

  private make(id: string, kind: NodeKind, label: string, parent: string | null): TreeNode {
    const node: TreeNode = {
      id,
      kind,
      label,
      parent,
      children: [],
      status: "running",
      model: null,
      own: zero(),
      total: zero(),
      latency: null,
      startedTs: null,
      finishedTs: null,
      notes: [],
    };
    this.nodes.set(id, node);
    if (parent !== null) this.ensure(parent).children.push(id);
    return node;
  }

  /** The node of ``id``, created (as a sub-call, until an event says more) if unseen. */
  private ensure(id: string, kind: NodeKind = "llm", parent?: string | null): TreeNode {
    const found = this.nodes.get(id);
    if (found) return found;
    return this.make(id, kind, id.split("/").pop() ?? id, parent === undefined ? parentOf(id) : parent);
  }

  /** Root turns and cells hang under their RLM's current iteration. */
  private inIteration(id: string, kind: NodeKind, iteration?: number): TreeNode {
    const found = this.nodes.get(id);
    if (found) return found;
    const rlm = parentOf(id) ?? ROOT;
    const n = iteration ?? this.current.get(rlm);
    if (n === undefined) return this.ensure(id, kind);
    const it = this.nodes.get(iterationId(rlm, n)) ?? this.startIteration(rlm, n);
    return this.make(id, kind, id, it.id);
  }

  private startIteration(rlm: string, n: number): TreeNode {
    this.current.set(rlm, n);
    const id = iterationId(rlm, n);
    const node = this.nodes.get(id) ?? this.make(id, "iteration", `iteration ${n}`, rlm);
    node.iteration = n;
    return node;
  }

  private addUsage(node: TreeNode, usage: Usage): void {
    // a resumed run reports a journaled call again: replace its share, never add it twice
    const delta: Usage = {
      input: usage.input - node.own.input,
      output: usage.output - node.own.output,
      cached: usage.cached - node.own.cached,
      cost: usage.cost - node.own.cost,
      unpriced: usage.unpriced - node.own.unpriced,
      calls: usage.calls - node.own.calls,
    };
    node.own = usage;
    for (let at: TreeNode | undefined = node; at; at = at.parent ? this.nodes.get(at.parent) : undefined) {
      const t = at.total;
      t.input += delta.input;
      t.output += delta.output;
      t.cached += delta.cached;
      t.cost += delta.cost;
      t.unpriced += delta.unpriced;
      t.calls += delta.calls;
    }
  }

  applyAll(events: Iterable<{ seq: number; event: RunEvent }>): void {
    for (const { seq, event } of events) {
      if (seq <= this.lastSeq) continue; // seen already (a reconnect never repeats, but be safe)
      this.apply(event);
      this.lastSeq = seq;
      this.applied += 1;
    }
    this.version += 1;
  }

  apply(e: RunEvent): void {
    const at = e.node_id;
    switch (e.type) {
      case "run_started": {
        if (at === "") {
          // a resumption starts again: what the last attempt's end said no longer holds
          Object.assign(this.summary, { question: e.question, model: e.model, subModel: e.sub_model, finished: false, stopReason: null, detail: "" });
          const root = this.root;
          root.status = "running";
          root.error = null;
          root.model = e.model;
          root.startedTs ??= e.ts;
        } else {
          const n = this.ensure(at, "rlm");
          n.status = "running";
          n.model = e.model;
        }
        return;
      }
      case "context_loaded":
        this.ensure(at || ROOT, "rlm").notes.push(`context: ${e.context_type}, ${e.total_chars.toLocaleString()} chars, ${e.files} file(s)`);
        return;
      case "iteration_started": {
        const it = this.startIteration(at || ROOT, e.iteration);
        it.status = "running";
        it.error = null;
        it.startedTs = e.ts;
        if ((at || ROOT) === ROOT) this.summary.iterations = Math.max(this.summary.iterations, e.iteration);
        return;
      }
      case "iteration_finished": {
        const it = this.startIteration(at || ROOT, e.iteration);
        it.status = e.status === "ok" ? "ok" : "failed";
        it.error = e.error;
        it.finishedTs = e.ts;
        return;
      }
      case "model_call_started": {
        const n = this.callNode(at, e.role);
        n.status = "running";
        n.error = null;
        n.model = e.model;
        n.promptChars = e.prompt_chars;
        n.startedTs ??= e.ts;
        return;
      }
      case "model_call_finished": {
        const n = this.callNode(at, e.role);
        if (n.kind !== "llm" || n.status === "running" || n.status === "queued") n.status = "ok";
        n.model = e.model;
        n.latency = e.latency_s;
        n.responseChars = e.response_chars;
        if (e.from_cache) n.notes.push("from the cache");
        this.addUsage(n, {
          input: e.input_tokens,
          output: e.output_tokens,
          cached: e.cached_tokens,
          cost: e.cost_usd ?? 0,
          unpriced: e.cost_usd === null ? 1 : 0,
          calls: 1,
        });
        return;
      }
      case "model_call_failed": {
        const n = this.callNode(at, e.role);
        n.status = "failed";
        n.error = e.kind ? `${e.kind}: ${e.error}` : e.error;
        return;
      }
      case "model_fallback":
        this.ensure(at).notes.push(`fell back from ${e.from_model} to ${e.to_model} (${e.kind}): ${e.error}`);
        return;
      case "context_metrics":
        return; // sizes of the prompt: the call's own event says what matters
      case "plugin_failed":
        this.ensure(at || ROOT, "rlm").notes.push(`plugin ${e.plugin}.${e.hook} failed: ${e.error}`);
        return;
      case "cell_started": {
        const n = this.inIteration(at, "cell", e.iteration);
        n.kind = "cell";
        n.label = `cell ${e.iteration}.${e.cell_index + 1}`;
        n.iteration = e.iteration;
        n.cellIndex = e.cell_index;
        n.code = e.code;
        n.instruction = e.instruction;
        n.status = "running";
        n.error = null;
        n.output = undefined;
        n.startedTs = e.ts;
        return;
      }
      case "cell_finished": {
        const n = this.inIteration(at, "cell", e.iteration);
        n.status = e.status === "ok" ? "ok" : "failed";
        n.output = e.output;
        n.outputChars = e.output_chars;
        n.latency = e.duration_s;
        n.error = e.error ?? (e.status === "ok" ? null : e.status);
        n.finishedTs = e.ts;
        return;
      }
      case "cell_blocked": {
        const n = this.inIteration(at, "cell", e.iteration);
        n.status = "blocked";
        n.error = `blocked${e.plugin ? ` by ${e.plugin}` : ""}: ${e.reason}`;
        n.notes.push(...e.details);
        return;
      }
      case "subcall_started": {
        const n = this.ensure(at, e.kind);
        n.kind = e.kind;
        n.label = `${e.kind === "llm" ? "llm_query" : e.kind === "rlm" ? "rlm_query" : "tool"} ${at.split("/").pop()}`;
        // a model sub-call waits for a concurrency slot until its model_call_started
        n.status = e.kind === "llm" ? "queued" : "running";
        n.error = null;
        n.promptChars = e.prompt_chars;
        n.startedTs = e.ts;
        return;
      }
      case "subcall_finished": {
        const n = this.ensure(at, e.kind);
        n.status = e.ok ? "ok" : "failed";
        n.error = e.error;
        n.resultChars = e.result_chars;
        n.finishedTs = e.ts;
        if (n.latency === null && n.startedTs !== null) n.latency = e.ts - n.startedTs;
        return;
      }
      case "digest_started": {
        const n = this.ensure(at, "digest");
        n.kind = "digest";
        n.label = `digest of cell ${e.iteration}.${e.cell_index + 1}`;
        n.status = "running";
        n.notes.push(`${e.output_chars.toLocaleString()} chars of output to digest`);
        return;
      }
      case "digest_finished": {
        const n = this.ensure(at, "digest");
        n.status = e.status === "ok" ? "ok" : "failed";
        n.error = e.error;
        n.resultChars = e.digest_chars;
        return;
      }
      case "sandbox_restarted":
        this.ensure(at || ROOT, "rlm").notes.push(`sandbox restarted: ${e.reason}`);
        return;
      case "final": {
        if (at === ROOT || at === "") {
          this.summary.answer = e.answer;
          this.summary.fields = e.fields ?? null;
        } else {
          this.ensure(at, "rlm").notes.push(`answer: ${e.answer.slice(0, 200)}`);
        }
        return;
      }
      case "run_finished": {
        const failed = e.stop_reason === "error" || e.stop_reason === "cancelled";
        if (at === "") {
          Object.assign(this.summary, {
            stopReason: e.stop_reason,
            detail: e.detail,
            iterations: e.iterations,
            inputTokens: e.input_tokens,
            outputTokens: e.output_tokens,
            costUsd: e.cost_usd,
            durationS: e.duration_s,
            finished: true,
          });
          const root = this.root;
          root.status = failed ? "failed" : "ok";
          root.latency = e.duration_s;
          if (failed) root.error = e.detail || e.stop_reason;
          this.closeOpen(e.stop_reason);
        } else {
          const n = this.ensure(at, "rlm");
          if (failed) n.error = e.detail || e.stop_reason;
          n.notes.push(`stopped: ${e.stop_reason}`);
        }
        return;
      }
      case "error": {
        const n = this.ensure(at || ROOT, "rlm");
        n.notes.push(`error${e.where ? ` in ${e.where}` : ""}: ${e.message}`);
        return;
      }
    }
  }

  /** The node of a model call: a root turn or capsule in its iteration, else the sub-call. */
  private callNode(at: string, role: string): TreeNode {
    if (role === "root") {
      const n = this.inIteration(at, "root_turn");
      if (n.kind === "llm") n.kind = "root_turn";
      if (n.label === at || /^\d+$/.test(n.label)) n.label = `root turn${n.parent && this.nodes.get(n.parent)?.iteration ? ` ${this.nodes.get(n.parent)!.iteration}` : ""}`;
      return n;
    }
    if (role === "capsule") {
      const n = this.inIteration(at, "capsule");
      n.kind = "capsule";
      n.label = "history capsule";
      return n;
    }
    if (role === "digest") {
      const n = this.ensure(at, "digest");
      n.kind = "digest";
      return n;
    }
    return this.ensure(at, "llm");
  }

  /** Once the run is over nothing is still running: what never closed ended with it. */
  private closeOpen(stop: string): void {
    for (const n of this.nodes.values()) {
      if (n.status === "running" || n.status === "queued") {
        n.status = stop === "error" || stop === "cancelled" ? "failed" : "ok";
        if (n.status === "failed") n.error ??= stop;
      }
    }
  }
}

export type Row = { node: TreeNode; depth: number; hasChildren: boolean; expanded: boolean };

/** The rows a tree view shows: depth-first, skipping what a collapsed node holds. */
export function visibleRows(tree: RunTree, collapsed: ReadonlySet<string>): Row[] {
  const rows: Row[] = [];
  const stack: Array<[string, number]> = [[ROOT, 0]];
  while (stack.length) {
    const [id, depth] = stack.pop()!;
    const node = tree.nodes.get(id);
    if (!node) continue;
    const expanded = !collapsed.has(id);
    rows.push({ node, depth, hasChildren: node.children.length > 0, expanded });
    if (expanded) for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i]!, depth + 1]);
  }
  return rows;
}

/** Every RLM's iterations in tree order, with the root turn and cells of each. */
export function iterations(tree: RunTree): Array<{ rlm: TreeNode; it: TreeNode; turn: TreeNode | null; cells: TreeNode[] }> {
  const out: Array<{ rlm: TreeNode; it: TreeNode; turn: TreeNode | null; cells: TreeNode[] }> = [];
  const walk = (id: string) => {
    const node = tree.nodes.get(id);
    if (!node) return;
    for (const child of node.children) {
      const c = tree.nodes.get(child);
      if (!c) continue;
      if (c.kind === "iteration") {
        const parts = c.children.map((k) => tree.nodes.get(k)).filter((k): k is TreeNode => !!k);
        out.push({ rlm: node, it: c, turn: parts.find((p) => p.kind === "root_turn") ?? null, cells: parts.filter((p) => p.kind === "cell") });
        parts.forEach((p) => walk(p.id));
      } else walk(child);
    }
  };
  walk(ROOT);
  return out;
}
