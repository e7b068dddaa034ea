// Renders console pages for tests: a fake hub behind a real ApiClient, signed in as `me`.
import { App as AntApp } from "antd";
import { render } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";
import { MemoryRouter } from "react-router-dom";
import { vi } from "vitest";

import "../i18n";
import { ApiClient, REFRESH_KEY } from "../api/client";
import type { Me } from "../api/types";
import { AuthProvider, useAuth } from "../auth/AuthContext";
import { LiveProvider } from "../live/LiveContext";

export type Routes = Record<string, unknown>;

export function fakeClient(me: Me, routes: Routes = {}) {
  const storage = new Map<string, string>([[REFRESH_KEY, "r0"]]);
  const store = {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => void storage.set(k, v),
    removeItem: (k: string) => void storage.delete(k),
  };
  const fetchFn = vi.fn(async (input: RequestInfo | URL) => {
    const path = String(input).split("?")[0] ?? "";
    const answer =
      path === "/api/auth/refresh"
        ? { access_token: "a", refresh_token: "r1", token_type: "Bearer", expires_in: 900 }
        : path === "/api/auth/me"
          ? me
          : path === "/api/tenants"
            ? { tenants: Object.keys(me.roles).map((t) => ({ tenant_id: t, name: t })) }
            : routes[path];
    if (answer === undefined) {
      return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), {
        status: 404,
        headers: { "Content-Type": "application/json" },
      });
    }
    return new Response(JSON.stringify(answer), { status: 200, headers: { "Content-Type": "application/json" } });
  });
  return { client: new ApiClient({ fetch: fetchFn, storage: store }), fetchFn };
}

/** As in the app, pages render once the session is loaded. */
function SignedIn({ children }: { children: ReactNode }) {
  return useAuth().status === "signedIn" ? <>{children}</> : null;
}

export function renderAs(me: Me, ui: ReactElement, routes: Routes = {}, path = "/") {
  const { client, fetchFn } = fakeClient(me, routes);
  const result = render(
    <AntApp>
      <MemoryRouter initialEntries={[path]}>
        <AuthProvider client={client}>
          <SignedIn>
            <LiveProvider>{ui}</LiveProvider>
          </SignedIn>
        </AuthProvider>
      </MemoryRouter>
    </AntApp>,
  );
  return { ...result, client, fetchFn };
}

export function user(role: Me["roles"][string], extra: Partial<Me> = {}): Me {
  return { user_id: "u1", email: "me@example.org", superadmin: false, roles: { acme: role }, ...extra };
}
