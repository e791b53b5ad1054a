// What a view opens one node at a time: a call's journaled prompt and reply, a window of a
// cell's output, the stored tree without outputs (to find a cell's artifact id).
import { getJson, query, type CellDetailOut, type CellOut, type NodeDetailOut, type TreeOut } from "./api";
import type { TreeNode } from "./runTree";

export const TEXT_LIMIT = 20_000;

const runPath = (runId: string) => `/v1/runs/${encodeURIComponent(runId)}`;

/** A node id in a path: its slashes stay separators, each segment is escaped. */
export function nodePath(nodeId: string): string {
  return nodeId.split("/").map(encodeURIComponent).join("/");
}

export function nodeDetail(runId: string, nodeId: string, maxChars: number): Promise<NodeDetailOut> {
  return getJson<NodeDetailOut>(`${runPath(runId)}/nodes/${nodePath(nodeId)}${query({ max_chars: maxChars })}`);
}

export function cellDetail(runId: string, artifactId: string, offset: number, limit: number): Promise<CellDetailOut> {
  return getJson<CellDetailOut>(`${runPath(runId)}/cells/${nodePath(artifactId)}${query({ offset, limit })}`);
}

// One stored tree per run and event count: a finished run's tree is fetched once however
// many nodes are opened; a run in flight is fetched again once new events have arrived.
const stored = new Map<string, { seq: number; tree: Promise<TreeOut> }>();

export function storedTree(runId: string, seq: number): Promise<TreeOut> {
  const hit = stored.get(runId);
  if (hit && hit.seq === seq) return hit.tree;
  const tree = getJson<TreeOut>(`${runPath(runId)}/tree${query({ outputs: "false" })}`);
  tree.catch(() => stored.delete(runId));
  stored.set(runId, { seq, tree });
  return tree;
}

/** The stored cell a tree node shows (outputs left out), or null if it is not stored yet. */
export function storedCell(tree: TreeOut, node: TreeNode): CellOut | null {
  const same = tree.cells.filter((c) => c.node_id === node.id);
  return same.find((c) => c.iteration === node.iteration && c.cell_index === node.cellIndex) ?? same[0] ?? null;
}

/** The largest text of a node detail: asking for this many characters shows all of it. */
export function longest(detail: NodeDetailOut): number {
  const sizes = [detail.request_chars ?? 0, detail.response_chars ?? 0, ...(detail.messages ?? []).map((m) => m.chars)];
  return Math.max(1, ...sizes);
}
