// The tenant's live event stream (`GET {T}/events`, text/event-stream) read with fetch so
// the access token travels in the Authorization header. Each (re)connection takes the
// current token; the stream ends when the token expires, and is opened again.
import { fetchEventSource } from "@microsoft/fetch-event-source";

import { ApiClient, errorFrom } from "./client";
import type { AlertView, DeviceView, TurnView } from "./types";

export type LiveEvent =
  | { type: "device"; data: DeviceView }
  | { type: "turn"; data: TurnView }
  | { type: "alert"; data: AlertView }
  | { type: "voice_config"; data: { revision: number; published_at: number | null } };

export type StreamState = "connecting" | "open" | "retrying" | "unavailable";

const KINDS = new Set(["device", "turn", "alert", "voice_config"]);
const RETRY_MS = 3_000;

class Fatal extends Error {}
class Retry extends Error {}

export function openEventStream(
  client: ApiClient,
  tenant: string,
  onEvent: (event: LiveEvent) => void,
  onState: (state: StreamState) => void = () => undefined,
): () => void {
  const controller = new AbortController();
  const url = `/api/tenants/${encodeURIComponent(tenant)}/events`;
  onState("connecting");
  fetchEventSource(url, {
    signal: controller.signal,
    openWhenHidden: true,
    async fetch(input, init) {
      await client.ensureFresh();
      const headers = { ...(init?.headers as Record<string, string>) };
      const token = client.accessToken();
      if (token) headers.Authorization = `Bearer ${token}`;
      return fetch(input, { ...init, headers });
    },
    async onopen(response) {
      const type = response.headers.get("Content-Type") ?? "";
      if (response.ok && type.startsWith("text/event-stream")) {
        onState("open");
        return;
      }
      if (response.status === 401) {
        await client.refresh();
        throw new Retry();
      }
      const error = await errorFrom(response);
      // No stream for this tenant or role: stop. Anything else (too many streams, the
      // hub starting or stopping): try again.
      throw response.status === 403 || response.status === 404 ? new Fatal(error.message) : new Retry();
    },
    onmessage(message) {
      if (!KINDS.has(message.event) || !message.data) return;
      try {
        onEvent({ type: message.event, data: JSON.parse(message.data) } as LiveEvent);
      } catch {
        // one malformed event is dropped, the stream goes on
      }
    },
    onclose() {
      throw new Retry(); // the hub ended it (token expiry, we fell behind): open it again
    },
    onerror(err: unknown) {
      if (err instanceof Fatal || !client.signedIn) {
        onState("unavailable");
        throw err;
      }
      onState("retrying");
      return RETRY_MS;
    },
  }).catch(() => undefined);
  return () => controller.abort();
}
