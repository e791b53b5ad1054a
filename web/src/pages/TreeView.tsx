// The execution tree as a virtualised list: only the rows in view are in the DOM, so a run
// of thousands of nodes scrolls and grows as smoothly as a small one.
import { useEffect, useMemo, useRef, useState } from "react";
import { visibleRows, type Row, type RunTree, type TreeNode } from "../runTree";
import { cost, seconds, tokens } from "../format";

export const ROW_HEIGHT = 28;
const OVERSCAN = 12;

const ICON: Record<string, string> = {
  run: "◆",
  iteration: "↻",
  root_turn: "✎",
  cell: "▶",
  llm: "λ",
  rlm: "⟳",
  tool: "⚙",
  digest: "≋",
  capsule: "▣",
};

function usageOf(n: TreeNode) {
  // a call shows its own usage; a cell, iteration or RLM what everything under it used
  const u = n.total.calls > 0 || n.children.length > 0 ? n.total : n.own;
  return { tokens: u.input + u.output, cost: u.calls === 0 ? null : u.unpriced === u.calls ? null : u.cost, unpriced: u.unpriced, calls: u.calls };
}

function TreeRow({ row, top, selected, onSelect, onToggle }: { row: Row; top: number; selected: boolean; onSelect: (id: string) => void; onToggle: (id: string) => void }) {
  const n = row.node;
  const u = usageOf(n);
  return (
    <div
      className={`tree-row st-${n.status}${selected ? " selected" : ""}`}
      style={{ top, height: ROW_HEIGHT }}
      role="treeitem"
      aria-selected={selected}
      aria-level={row.depth + 1}
      data-testid="tree-row"
      data-node-id={n.id}
      data-kind={n.kind}
      data-status={n.status}
      data-depth={row.depth}
      onClick={() => onSelect(n.id)}
    >
      <span className="tree-label" style={{ paddingLeft: row.depth * 16 }}>
        {row.hasChildren ? (
          <button
            className="toggle"
            data-testid="tree-toggle"
            aria-expanded={row.expanded}
            aria-label={row.expanded ? "collapse" : "expand"}
            onClick={(e) => {
              e.stopPropagation();
              onToggle(n.id);
            }}
          >
            {row.expanded ? "▾" : "▸"}
          </button>
        ) : (
          <span className="toggle" />
        )}
        <span className={`dot st-${n.status}`} title={n.status} />
        <span className="kind-icon" title={n.kind}>
          {ICON[n.kind] ?? "•"}
        </span>
        <span data-testid="tree-row-label">{n.label}</span>
        {row.hasChildren && !row.expanded && <span className="muted"> ({n.children.length})</span>}
        {n.error && <span className="row-error"> — {n.error.slice(0, 80)}</span>}
      </span>
      <span className="tree-model muted" data-testid="tree-row-model">
        {n.model ?? ""}
      </span>
      <span className="num" data-testid="tree-row-tokens">
        {u.calls > 0 ? tokens(u.tokens) : ""}
      </span>
      <span className="num" data-testid="tree-row-cost">
        {u.calls > 0 ? cost(u.cost, u.cost === null ? 0 : u.unpriced) : ""}
      </span>
      <span className="num" data-testid="tree-row-latency">
        {n.latency !== null ? seconds(n.latency) : ""}
      </span>
    </div>
  );
}

export function TreeView({ tree, version, selected, onSelect }: { tree: RunTree; version: number; selected: string | null; onSelect: (id: string) => void }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(560);
  const box = useRef<HTMLDivElement>(null);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed, version]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const shown = rows.slice(first, last);

  useEffect(() => {
    if (shown.length > 0 && performance.getEntriesByName("rlm:tree-first-render").length === 0) performance.mark("rlm:tree-first-render");
  }, [shown.length]);

  const toggle = (id: string) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const collapseAll = () => setCollapsed(new Set([...tree.nodes.values()].filter((n) => n.children.length > 0 && n.parent !== null).map((n) => n.id)));

  const onKey = (e: React.KeyboardEvent) => {
    const at = rows.findIndex((r) => r.node.id === selected);
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = rows[Math.max(0, Math.min(rows.length - 1, at + (e.key === "ArrowDown" ? 1 : -1)))];
      if (next) onSelect(next.node.id);
    } else if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && at >= 0) {
      const row = rows[at]!;
      if (row.hasChildren && row.expanded === (e.key === "ArrowLeft")) toggle(row.node.id);
    }
  };

  return (
    <div className="tree-wrap">
      <div className="tree-tools">
        <button data-testid="tree-expand-all" onClick={() => setCollapsed(new Set())}>
          Expand all
        </button>
        <button data-testid="tree-collapse-all" onClick={collapseAll}>
          Collapse all
        </button>
        <span className="muted">{tree.nodes.size.toLocaleString()} nodes</span>
      </div>
      <div className="tree-header muted">
        <span className="tree-label">node</span>
        <span className="tree-model">model</span>
        <span className="num">tokens</span>
        <span className="num">cost</span>
        <span className="num">latency</span>
      </div>
      <div
        className="tree"
        ref={box}
        role="tree"
        tabIndex={0}
        onKeyDown={onKey}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
        data-testid="tree"
        data-node-count={tree.nodes.size}
        data-visible-count={rows.length}
      >
        <div style={{ height: rows.length * ROW_HEIGHT, position: "relative" }}>
          {shown.map((row, i) => (
            <TreeRow key={row.node.id} row={row} top={(first + i) * ROW_HEIGHT} selected={row.node.id === selected} onSelect={onSelect} onToggle={toggle} />
          ))}
        </div>
      </div>
    </div>
  );
}
