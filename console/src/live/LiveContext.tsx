// Live fleet state for every page: the devices (fleet list + `device` events), the last
// turns, the unread alert count, and a subscription for pages that want each event.
import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";

import type { ApiError } from "../api/client";
import { openEventStream } from "../api/events";
import type { LiveEvent, StreamState } from "../api/events";
import type { AlertView, DeviceView } from "../api/types";
import { useAuth, useTenantPath } from "../auth/AuthContext";

interface Live {
  devices: Record<string, DeviceView>;
  fleetError: ApiError | null;
  fleetLoading: boolean;
  stream: StreamState;
  unread: number;
  setUnread(update: (n: number) => number): void;
  subscribe(listener: (event: LiveEvent) => void): () => void;
  reloadFleet(): void;
}

const LiveContext = createContext<Live | null>(null);

export function LiveProvider({ children }: { children: ReactNode }) {
  const { client, tenant, can } = useAuth();
  const base = useTenantPath();
  const [devices, setDevices] = useState<Record<string, DeviceView>>({});
  const [fleetError, setFleetError] = useState<ApiError | null>(null);
  const [fleetLoading, setFleetLoading] = useState(true);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [unread, setUnreadState] = useState(0);
  const [generation, setGeneration] = useState(0);
  const listeners = useRef(new Set<(event: LiveEvent) => void>());
  const mayRead = can("devices.read");
  const mayAlerts = can("alerts.read");

  useEffect(() => {
    if (!tenant || !mayRead) return;
    let live = true;
    setFleetLoading(true);
    client
      .get<{ devices: DeviceView[] }>(`${base}/fleet`)
      .then((r) => {
        if (!live) return;
        setDevices(Object.fromEntries(r.devices.map((d) => [d.device, d])));
        setFleetError(null);
      })
      .catch((e: ApiError) => live && setFleetError(e))
      .finally(() => live && setFleetLoading(false));
    return () => {
      live = false;
    };
  }, [client, tenant, base, mayRead, generation]);

  useEffect(() => {
    if (!tenant || !mayAlerts) return;
    client
      .get<{ unread: number }>(`${base}/alerts`, { unread: true, limit: 1 })
      .then((r) => setUnreadState(r.unread))
      .catch(() => setUnreadState(0));
  }, [client, tenant, base, mayAlerts]);

  useEffect(() => {
    if (!tenant || !mayRead) return;
    return openEventStream(
      client,
      tenant,
      (event) => {
        if (event.type === "device") {
          setDevices((prev) => ({ ...prev, [event.data.device]: event.data }));
        } else if (event.type === "turn") {
          setDevices((prev) => {
            const d = prev[event.data.device];
            return d ? { ...prev, [d.device]: { ...d, last_turn: event.data } } : prev;
          });
        } else if (event.type === "alert" && !(event.data as AlertView).read) {
          setUnreadState((n) => n + 1);
        }
        for (const listener of listeners.current) listener(event);
      },
      setStream,
    );
  }, [client, tenant, mayRead]);

  const subscribe = useCallback((listener: (event: LiveEvent) => void) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);

  const value: Live = {
    devices,
    fleetError,
    fleetLoading,
    stream,
    unread,
    setUnread: setUnreadState,
    subscribe,
    reloadFleet: () => setGeneration((g) => g + 1),
  };
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  const live = useContext(LiveContext);
  if (!live) throw new Error("useLive outside LiveProvider");
  return live;
}
