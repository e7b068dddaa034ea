import { createContext, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";

import { ApiClient, api as defaultClient } from "../api/client";
import type { Me, Tenant } from "../api/types";
import { actionsIn, mayOnPlatform } from "./permissions";
import type { Action } from "./permissions";

const TENANT_KEY = "konak.tenant";

type Status = "loading" | "signedOut" | "signedIn";

export interface Auth {
  client: ApiClient;
  status: Status;
  me: Me | null;
  tenants: Tenant[];
  tenant: string | null;
  setTenant(tenant: string): void;
  can(action: Action): boolean;
  canPlatform(action: "tenants.create"): boolean;
  login(email: string, password: string): Promise<void>;
  logout(): Promise<void>;
  reload(): Promise<void>;
}

const AuthContext = createContext<Auth | null>(null);

function pickTenant(me: Me, tenants: Tenant[]): string | null {
  const saved = localStorage.getItem(TENANT_KEY);
  const ids = tenants.map((t) => t.tenant_id);
  for (const id of Object.keys(me.roles)) if (!ids.includes(id)) ids.push(id);
  if (saved && ids.includes(saved)) return saved;
  return ids[0] ?? null;
}

export function AuthProvider({
  children,
  client = defaultClient,
}: {
  children: ReactNode;
  client?: ApiClient;
}) {
  const [status, setStatus] = useState<Status>("loading");
  const [me, setMe] = useState<Me | null>(null);
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [tenant, setTenantState] = useState<string | null>(null);

  const load = useCallback(async () => {
    const who = await client.get<Me>("/api/auth/me");
    const list = await client
      .get<{ tenants: Tenant[] }>("/api/tenants")
      .then((r) => r.tenants)
      .catch(() => Object.keys(who.roles).map((id) => ({ tenant_id: id, name: id })));
    setMe(who);
    setTenants(list);
    setTenantState(pickTenant(who, list));
    setStatus("signedIn");
  }, [client]);

  useEffect(() => {
    const off = client.subscribe((signedIn) => {
      if (!signedIn) {
        setMe(null);
        setStatus("signedOut");
      }
    });
    client
      .resume()
      .then((ok) => (ok ? load() : setStatus("signedOut")))
      .catch(() => setStatus("signedOut"));
    return off;
  }, [client, load]);

  const value = useMemo<Auth>(() => {
    const actions = actionsIn(me, tenant);
    return {
      client,
      status,
      me,
      tenants,
      tenant,
      setTenant(next: string) {
        localStorage.setItem(TENANT_KEY, next);
        setTenantState(next);
      },
      can: (action) => actions.has(action),
      canPlatform: (action) => mayOnPlatform(me, action),
      async login(email, password) {
        await client.login(email, password);
        await load();
      },
      async logout() {
        await client.logout();
        setMe(null);
        setStatus("signedOut");
      },
      reload: load,
    };
  }, [client, status, me, tenants, tenant, load]);

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside AuthProvider");
  return auth;
}

/** The path prefix of the current tenant's routes. */
export function useTenantPath(): string {
  const { tenant } = useAuth();
  return `/api/tenants/${encodeURIComponent(tenant ?? "")}`;
}

/** Renders its children only when the user holds `action` in the current tenant. */
export function Can({ action, children }: { action: Action; children: ReactNode }) {
  const { can } = useAuth();
  return can(action) ? <>{children}</> : null;
}
