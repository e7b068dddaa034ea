// The console's one way to the hub's API: tokens, refresh, errors.
//
// The access token lives only in memory; the refresh token in sessionStorage (this tab,
// survives a reload, gone with the tab). Refresh tokens rotate: each is sent at most once,
// and concurrent callers share the one refresh in flight.

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

export interface FieldProblem {
  path: string;
  message: string;
}

/** An error the API reported (`{"error": {"code", "message", "details"?}}`) or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldProblem[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const REFRESH_KEY = "konak.refresh_token";
export const REFRESH_MARGIN_SECONDS = 60;

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface ClientOptions {
  fetch?: typeof fetch;
  storage?: KeyValueStore;
  baseUrl?: string;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

interface RequestOptions {
  body?: unknown;
  query?: Query;
  /** Send the access token (and refresh on a 401). */
  auth?: boolean;
}

type Listener = (signedIn: boolean) => void;

function normaliseDetails(raw: unknown): FieldProblem[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((d: unknown) => {
    if (typeof d !== "object" || d === null) return [];
    const r = d as Record<string, unknown>;
    const path = r.path ?? r.field;
    const message = r.message ?? r.problem;
    return typeof path === "string" && typeof message === "string" ? [{ path, message }] : [];
  });
}

/** The ApiError a failed response stands for (its JSON error body when it has one). */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let details: FieldProblem[] = [];
  try {
    const body: unknown = await response.json();
    const err = (body as { error?: Record<string, unknown> } | null)?.error;
    if (err && typeof err === "object") {
      if (typeof err.code === "string") code = err.code;
      if (typeof err.message === "string") message = err.message;
      details = normaliseDetails(err.details);
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, details);
}

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export class ApiClient {
  private access: string | null = null;
  private expiresAtMs = 0;
  private refreshing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private listeners = new Set<Listener>();
  private readonly fetchFn: typeof fetch;
  private readonly storage: KeyValueStore;
  private readonly baseUrl: string;

  constructor(options: ClientOptions = {}) {
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.storage = options.storage ?? window.sessionStorage;
    this.baseUrl = options.baseUrl ?? "";
  }

  get signedIn(): boolean {
    return this.access !== null;
  }

  /** The current access token (for the event stream's header). */
  accessToken(): string | null {
    return this.access;
  }

  hasRefreshToken(): boolean {
    return this.storage.getItem(REFRESH_KEY) !== null;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async login(email: string, password: string): Promise<void> {
    const pair = await this.request<TokenPair>("POST", "/api/auth/login", {
      body: { email, password },
      auth: false,
    });
    this.setSession(pair);
  }

  /** After a reload: exchange the stored refresh token for a session; false without one. */
  async resume(): Promise<boolean> {
    if (this.signedIn) return true;
    if (!this.hasRefreshToken()) return false;
    try {
      await this.refresh();
    } catch {
      return false;
    }
    return this.signedIn;
  }

  /** Sign this session out on the hub (best effort) and forget its tokens. */
  async logout(): Promise<void> {
    if (this.access) {
      try {
        await this.send("POST", "/api/auth/logout", undefined, this.access);
      } catch {
        // the local session ends whatever the hub answered
      }
    }
    this.clear();
  }

  /** Rotate the refresh token; concurrent callers share one request. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const token = this.storage.getItem(REFRESH_KEY);
    if (token === null) {
      this.clear();
      throw new ApiError(401, "not_signed_in", "sign in first");
    }
    // Taken out before it is sent: a rotated token is never sent twice.
    this.storage.removeItem(REFRESH_KEY);
    let response: Response;
    try {
      response = await this.fetchFn(this.baseUrl + "/api/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch {
      // It never reached the hub: the token is still unused, keep it for the next try.
      this.storage.setItem(REFRESH_KEY, token);
      throw new ApiError(0, "network", "the hub cannot be reached");
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      this.clear();
      throw error;
    }
    this.setSession((await response.json()) as TokenPair);
  }

  /** Refresh first when the access token is (about to be) out of date. */
  async ensureFresh(): Promise<void> {
    if (this.refreshing) {
      await this.refreshing;
      return;
    }
    if (this.access && Date.now() < this.expiresAtMs - 5_000) return;
    if (this.hasRefreshToken()) await this.refresh();
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, { query });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, { body });
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("PUT", path, { body });
  }

  del<T = void>(path: string): Promise<T> {
    return this.request<T>("DELETE", path, {});
  }

  /** A request; a 401 refreshes the session once and tries again. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const auth = options.auth ?? true;
    const url = withQuery(path, options.query);
    if (auth) await this.ensureFresh();
    const used = auth ? this.access : null;
    let response = await this.send(method, url, options.body, used);
    if (response.status === 401 && auth) {
      if (this.access === used) {
        // (a refresh in flight has taken the token out of storage: share it)
        if (!this.refreshing && !this.hasRefreshToken()) {
          const error = await errorFrom(response);
          this.clear();
          throw error;
        }
        await this.refresh();
      }
      response = await this.send(method, url, options.body, this.access);
      if (response.status === 401) {
        const error = await errorFrom(response);
        this.clear();
        throw error;
      }
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return undefined as T;
    const type = response.headers.get("Content-Type") ?? "";
    if (type.includes("application/json")) return (await response.json()) as T;
    return (await response.text()) as T;
  }

  private async send(
    method: string,
    url: string,
    body: unknown,
    token: string | null,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await this.fetchFn(this.baseUrl + url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network", "the hub cannot be reached");
    }
  }

  private setSession(pair: TokenPair): void {
    const wasSignedIn = this.signedIn;
    this.access = pair.access_token;
    this.expiresAtMs = Date.now() + pair.expires_in * 1000;
    this.storage.setItem(REFRESH_KEY, pair.refresh_token);
    this.schedule(pair.expires_in);
    if (!wasSignedIn) this.notify(true);
  }

  /** Refresh a minute before expiry (half-way for tokens shorter than two minutes). */
  private schedule(expiresInSeconds: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    const delaySeconds = Math.max(
      expiresInSeconds - REFRESH_MARGIN_SECONDS,
      expiresInSeconds / 2,
    );
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh().catch(() => undefined); // a failure signs out (listeners are told)
    }, delaySeconds * 1000);
  }

  private clear(): void {
    const wasSignedIn = this.signedIn;
    this.access = null;
    this.expiresAtMs = 0;
    this.storage.removeItem(REFRESH_KEY);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (wasSignedIn) this.notify(false);
  }

  private notify(signedIn: boolean): void {
    for (const listener of this.listeners) listener(signedIn);
  }
}

export const api = new ApiClient();
