// A router of four pages does not need a dependency: the path is state, links push it.
import { useEffect, useState } from "react";

export type Route =
  | { page: "runs" }
  | { page: "run"; id: string }
  | { page: "sessions" }
  | { page: "session"; id: string }
  | { page: "dashboard" }
  | { page: "missing"; path: string };

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const [first, second, extra] = parts;
  if (extra !== undefined) return { page: "missing", path };
  if (first === undefined || (first === "runs" && second === undefined)) return { page: "runs" };
  if (first === "runs" && second) return { page: "run", id: second };
  if (first === "sessions" && second === undefined) return { page: "sessions" };
  if (first === "sessions" && second) return { page: "session", id: second };
  if (first === "dashboard" && second === undefined) return { page: "dashboard" };
  return { page: "missing", path };
}

const listeners = new Set<() => void>();

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  listeners.forEach((l) => l());
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return parseRoute(path);
}
