import { afterEach, describe, expect, it, vi } from "vitest";
import type { NodeDetailOut, TreeOut } from "./api";
import { cellDetail, longest, nodeDetail, nodePath, storedCell } from "./details";
import type { TreeNode } from "./runTree";

afterEach(() => vi.unstubAllGlobals());

describe("detail requests", () => {
  it("keep a node id's slashes as path separators and escape the rest", async () => {
    const asked: string[] = [];
    vi.stubGlobal("fetch", async (path: string) => {
      asked.push(path);
      return Response.json({});
    });
    expect(nodePath("r/1/0")).toBe("r/1/0");
    await nodeDetail("run 1", "r/1/0", 500);
    await cellDetail("run1", "run1:r/1:2:0", 40, 20);
    expect(asked).toEqual(["/v1/runs/run%201/nodes/r/1/0?max_chars=500", "/v1/runs/run1/cells/run1%3Ar/1%3A2%3A0?offset=40&limit=20"]);
  });

  it("find a tree node's stored cell by iteration and index", () => {
    const cell = (iteration: number, cell_index: number) => ({ node_id: "r/1", iteration, cell_index, artifact_id: `x:r/1:${iteration}:${cell_index}` });
    const tree = { cells: [cell(1, 0), cell(1, 1)] } as unknown as TreeOut;
    const node = { id: "r/1", iteration: 1, cellIndex: 1 } as TreeNode;
    expect(storedCell(tree, node)?.artifact_id).toBe("x:r/1:1:1");
    expect(storedCell(tree, { ...node, id: "r/3" })).toBeNull();
  });

  it("ask for the longest text when showing all", () => {
    const detail = { request_chars: 10, response_chars: 7, messages: [{ role: "user", content: "", chars: 900 }] } as unknown as NodeDetailOut;
    expect(longest(detail)).toBe(900);
  });
});
