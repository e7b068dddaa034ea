import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ApiClient, ApiError, REFRESH_KEY } from "./client";
import type { KeyValueStore } from "./client";

class MemoryStore implements KeyValueStore {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
}

interface Call {
  url: string;
  method: string;
  auth: string | null;
  body: unknown;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

let serial = 0;
function pair(expires = 900) {
  serial += 1;
  return { access_token: `access-${serial}`, refresh_token: `refresh-${serial}`, token_type: "Bearer", expires_in: expires };
}

/** A fake hub: login and refresh rotate tokens (a reused refresh token is refused); other
 * routes answer 401 unless the access token is the latest. */
function fakeHub() {
  const calls: Call[] = [];
  const hub = { access: "", refresh: "", used: new Set<string>(), refreshDelay: Promise.resolve() as Promise<unknown> };
  const fetchFn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    const call = { url: String(input), method: init?.method ?? "GET", auth: headers.Authorization ?? null, body };
    calls.push(call);
    const issue = () => {
      const p = pair();
      hub.access = p.access_token;
      hub.refresh = p.refresh_token;
      return json(200, p);
    };
    if (call.url === "/api/auth/login") return issue();
    if (call.url === "/api/auth/refresh") {
      await hub.refreshDelay;
      const token = (body as { refresh_token: string }).refresh_token;
      if (hub.used.has(token) || token !== hub.refresh) {
        return json(401, { error: { code: "token_reused", message: "refresh token reused" } });
      }
      hub.used.add(token);
      return issue();
    }
    if (call.url === "/api/auth/logout") return new Response(null, { status: 204 });
    if (call.auth !== `Bearer ${hub.access}`) {
      return json(401, { error: { code: "token_expired", message: "the access token expired" } });
    }
    return json(200, { ok: true, url: call.url });
  });
  return { calls, hub, fetchFn };
}

describe("ApiClient sessions", () => {
  let store: MemoryStore;
  beforeEach(() => {
    store = new MemoryStore();
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("keeps the access token in memory and only the refresh token in session storage", async () => {
    const { fetchFn, hub } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await client.login("a@example.org", "pw");
    expect(client.accessToken()).toBe(hub.access);
    expect([...store.items.entries()]).toEqual([[REFRESH_KEY, hub.refresh]]);
  });

  it("refreshes a minute before the access token expires, not earlier", async () => {
    const { fetchFn, calls } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await client.login("a@example.org", "pw");
    await vi.advanceTimersByTimeAsync(839_000);
    expect(calls.filter((c) => c.url === "/api/auth/refresh")).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls.filter((c) => c.url === "/api/auth/refresh")).toHaveLength(1);
    expect(client.signedIn).toBe(true);
  });

  it("shares one refresh among concurrent requests that meet a 401 and retries each once", async () => {
    const { fetchFn, calls, hub } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await client.login("a@example.org", "pw");
    hub.access = "rotated-elsewhere"; // the hub no longer takes our access token
    let release: () => void = () => undefined;
    hub.refreshDelay = new Promise<void>((r) => (release = r));
    const results = Promise.all([client.get("/api/one"), client.get("/api/two"), client.get("/api/three")]);
    await vi.advanceTimersByTimeAsync(0);
    release();
    const answers = await results;
    expect(answers).toHaveLength(3);
    const refreshes = calls.filter((c) => c.url === "/api/auth/refresh");
    expect(refreshes).toHaveLength(1);
    const sent = refreshes.map((c) => (c.body as { refresh_token: string }).refresh_token);
    expect(new Set(sent).size).toBe(sent.length);
    for (const path of ["/api/one", "/api/two", "/api/three"]) {
      const tries = calls.filter((c) => c.url === path);
      expect(tries).toHaveLength(2);
      expect(tries[1]?.auth).toBe(`Bearer ${hub.access}`);
    }
  });

  it("never sends a refresh token twice across successive refreshes", async () => {
    const { fetchFn, calls } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await client.login("a@example.org", "pw");
    await client.refresh();
    await client.refresh();
    await Promise.all([client.refresh(), client.refresh()]);
    const sent = calls
      .filter((c) => c.url === "/api/auth/refresh")
      .map((c) => (c.body as { refresh_token: string }).refresh_token);
    expect(sent).toHaveLength(3);
    expect(new Set(sent).size).toBe(3);
    expect(client.signedIn).toBe(true);
  });

  it("signs out and tells its listeners when the refresh is refused", async () => {
    const { fetchFn, hub } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    const seen: boolean[] = [];
    client.subscribe((s) => seen.push(s));
    await client.login("a@example.org", "pw");
    hub.refresh = "revoked-by-the-hub";
    hub.access = "gone";
    await expect(client.get("/api/x")).rejects.toMatchObject({ status: 401, code: "token_reused" });
    expect(client.signedIn).toBe(false);
    expect(store.getItem(REFRESH_KEY)).toBeNull();
    expect(seen).toEqual([true, false]);
  });

  it("resumes a session after a reload from the stored refresh token", async () => {
    const { fetchFn, hub } = fakeHub();
    const first = new ApiClient({ fetch: fetchFn, storage: store });
    await first.login("a@example.org", "pw");
    const reloaded = new ApiClient({ fetch: fetchFn, storage: store });
    expect(await reloaded.resume()).toBe(true);
    expect(reloaded.accessToken()).toBe(hub.access);
  });

  it("keeps an unsent refresh token when the hub cannot be reached", async () => {
    const store2 = store;
    store2.setItem(REFRESH_KEY, "still-unused");
    const client = new ApiClient({ fetch: vi.fn().mockRejectedValue(new TypeError("offline")), storage: store2 });
    await expect(client.refresh()).rejects.toMatchObject({ code: "network" });
    expect(store2.getItem(REFRESH_KEY)).toBe("still-unused");
  });

  it("logs out on the hub with its access token and forgets both tokens", async () => {
    const { fetchFn, calls } = fakeHub();
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await client.login("a@example.org", "pw");
    const token = client.accessToken();
    await client.logout();
    const logout = calls.find((c) => c.url === "/api/auth/logout");
    expect(logout?.auth).toBe(`Bearer ${token}`);
    expect(client.signedIn).toBe(false);
    expect(store.getItem(REFRESH_KEY)).toBeNull();
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(calls.filter((c) => c.url === "/api/auth/refresh")).toHaveLength(0);
  });
});

describe("ApiClient errors", () => {
  const store = new MemoryStore();

  it("reports the API's error code, message and field details", async () => {
    const fetchFn = vi.fn().mockResolvedValue(
      json(422, {
        error: {
          code: "sentence_invalid",
          message: "a template does not parse",
          details: [{ path: "sentences.HassTurnOn[2]", message: "unbalanced [" }],
        },
      }),
    );
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    const error = await client.request("PUT", "/api/x", { auth: false, body: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 422,
      code: "sentence_invalid",
      message: "a template does not parse",
      details: [{ path: "sentences.HassTurnOn[2]", message: "unbalanced [" }],
    });
  });

  it("reads pydantic's field/problem details as path/message", async () => {
    const fetchFn = vi.fn().mockResolvedValue(
      json(400, { error: { code: "invalid_body", message: "bad", details: [{ field: "email", problem: "too short" }] } }),
    );
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await expect(client.request("POST", "/api/x", { auth: false, body: {} })).rejects.toMatchObject({
      code: "invalid_body",
      details: [{ path: "email", message: "too short" }],
    });
  });

  it("falls back to the status line when the error body is not JSON", async () => {
    const fetchFn = vi.fn().mockResolvedValue(new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await expect(client.request("GET", "/api/x", { auth: false })).rejects.toMatchObject({
      status: 502,
      code: "http_502",
      message: "Bad Gateway",
    });
  });

  it("turns a network failure into one 'network' error", async () => {
    const client = new ApiClient({ fetch: vi.fn().mockRejectedValue(new TypeError("Failed to fetch")), storage: store });
    await expect(client.request("GET", "/api/x", { auth: false })).rejects.toMatchObject({ status: 0, code: "network" });
  });

  it("answers undefined for a 204 and sends query parameters without empty ones", async () => {
    const fetchFn = vi.fn().mockResolvedValue(new Response(null, { status: 204 }));
    const client = new ApiClient({ fetch: fetchFn, storage: store });
    await expect(client.request("GET", "/api/a", { auth: false, query: { x: 1, y: "", z: undefined, w: "a b" } })).resolves.toBeUndefined();
    expect(fetchFn.mock.calls[0]?.[0]).toBe("/api/a?x=1&w=a+b");
  });
});
