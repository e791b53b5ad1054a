// The one way the UI talks to the server: fetch with the browser session's API key, the
// server's error body turned into an ApiError, and a 401 turned into a key prompt.
import type { components } from "./gen/api";

type S = components["schemas"];
export type RunOut = S["RunOut"];
export type RunPage = S["RunPageOut"];
export type RunAccepted = S["RunAccepted"];
export type TreeOut = S["TreeOut"];
export type NodeOut = S["NodeOut"];
export type CellOut = S["CellOut"];
export type SessionOut = S["SessionOut"];
export type MemoryItem = S["MemoryItemOut"];
export type StatsOut = S["StatsOut"];
export type UsageTotals = S["UsageTotalsOut"];
export type RunCreate = S["RunCreate"];
export type NodeDetailOut = S["NodeDetailOut"];
export type CellDetailOut = S["CellDetailOut"];
export type ReplayOut = S["ReplayOut"];

const KEY_NAME = "rlm.apiKey";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string = "",
  ) {
    super(message);
  }
}

// --- the API key: sessionStorage only, so it ends with the browser session -------------

type AuthState = { wanted: boolean; refused: boolean };
let auth: AuthState = { wanted: false, refused: false };
const authListeners = new Set<(s: AuthState) => void>();
let keyWaiters: Array<() => void> = [];

export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_NAME);
  } catch {
    return null;
  }
}

export function setApiKey(key: string): void {
  sessionStorage.setItem(KEY_NAME, key.trim());
  setAuth({ wanted: false, refused: false });
  const waiting = keyWaiters;
  keyWaiters = [];
  waiting.forEach((wake) => wake());
}

export function forgetApiKey(): void {
  sessionStorage.removeItem(KEY_NAME);
}

function setAuth(next: AuthState): void {
  auth = next;
  authListeners.forEach((l) => l(auth));
}

export function onAuth(listener: (s: AuthState) => void): () => void {
  authListeners.add(listener);
  listener(auth);
  return () => authListeners.delete(listener);
}

/** Resolves once the user has entered a key (after the server refused the request). */
export function waitForKey(sentKey: string | null): Promise<void> {
  setAuth({ wanted: true, refused: sentKey !== null });
  return new Promise((resolve) => keyWaiters.push(resolve));
}

export function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// --- requests ------------------------------------------------------------------------

async function errorOf(reply: Response): Promise<ApiError> {
  let message = `${reply.status} ${reply.statusText}`;
  let hint = "";
  try {
    const body = await reply.json();
    if (body?.error?.message) {
      message = String(body.error.message);
      hint = String(body.error.hint ?? "");
    }
  } catch {
    // not our error body (a proxy's page): the status line says enough
  }
  return new ApiError(reply.status, message, hint);
}

/** fetch against the API, waiting for a key and retrying while the server answers 401. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const key = apiKey();
    const headers = new Headers(init.headers);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const reply = await fetch(path, { ...init, headers });
    if (reply.status === 401) {
      await waitForKey(key);
      continue;
    }
    if (!reply.ok) throw await errorOf(reply);
    return reply;
  }
}

export async function getJson<T>(path: string): Promise<T> {
  return (await request(path)).json() as Promise<T>;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const reply = await request(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (reply.status === 204 ? undefined : await reply.json()) as T;
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Downloads an export through fetch, so the key goes in a header and not in the URL. */
export async function download(path: string, filename: string): Promise<void> {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export type UploadProgress = { loaded: number; total: number };

/** A multipart upload with progress (fetch has no upload progress; XMLHttpRequest does). */
export function uploadSession(
  name: string,
  file: File,
  onProgress: (p: UploadProgress) => void,
): Promise<SessionOut> {
  const attempt = (): Promise<SessionOut | "unauthorized"> =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/sessions");
      const key = apiKey();
      if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
      xhr.upload.onprogress = (e) => onProgress({ loaded: e.loaded, total: e.lengthComputable ? e.total : file.size });
      xhr.onerror = () => reject(new ApiError(0, "the upload failed: the server did not answer"));
      xhr.onload = () => {
        if (xhr.status === 401) return resolve("unauthorized");
        let body: { error?: { message?: string; hint?: string } } & Partial<SessionOut> = {};
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // fall through to the status line
        }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body as SessionOut);
        reject(new ApiError(xhr.status, body.error?.message ?? `${xhr.status} ${xhr.statusText}`, body.error?.hint ?? ""));
      };
      const form = new FormData();
      form.append("name", name); // before the file: the server reads fields up to it
      form.append("file", file, file.name);
      xhr.send(form);
    });
  return (async () => {
    for (;;) {
      const sent = apiKey();
      const done = await attempt();
      if (done !== "unauthorized") return done;
      await waitForKey(sent);
    }
  })();
}
