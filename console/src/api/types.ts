// The shapes the hub's API answers with (konak/hub/api and the issue-15 console contract).

export type Role = "admin" | "operator" | "member" | "readonly";
export const ROLES: Role[] = ["admin", "operator", "member", "readonly"];

export interface Me {
  user_id: string;
  email: string;
  superadmin: boolean;
  roles: Record<string, Role>;
  permissions?: Record<string, string[]>;
  platform_permissions?: string[];
}

export interface Tenant {
  tenant_id: string;
  name: string;
}

export interface Member {
  user_id: string;
  email: string;
  role: Role;
}

export interface AuditEntry {
  id: number;
  at: number;
  tenant_id: string;
  actor: string;
  action: string;
  target: string;
  ip: string;
  outcome: string;
  status: number;
}

export interface AuditPage {
  entries: AuditEntry[];
  next: number | null;
}

export interface Claim {
  claim_id: string;
  created_at: number;
  created_by: string;
  expires_at: number;
  used_at: number | null;
  device: string | null;
  for_device: string | null;
}

export interface MintedClaim {
  token: string;
  tenant: string;
  expires_at: number;
  device?: string;
  claim_id?: string;
  enroll_command?: string;
}

export type DeviceState = "online" | "offline" | "error" | "never_seen";
export const DEVICE_STATES: DeviceState[] = ["online", "offline", "error", "never_seen"];

export interface TelemetryNow {
  cpu_percent: number | null;
  rss_bytes: number | null;
  temperature_celsius: number | null;
  received_at: number;
}

export interface TurnView {
  turn_id: string;
  device: string;
  text: string | null;
  intent: string | null;
  outcome: string | null;
  reply_text: string | null;
  latency_ms: number | null;
  created_at: number;
  finished_at: number | null;
}

export interface DeviceView {
  device: string;
  name: string | null;
  area: string | null;
  state: DeviceState;
  error: string | null;
  enrolled: boolean;
  last_seen: number | null;
  state_since: number | null;
  versions: Record<string, string>;
  models: string[];
  config_revision: number | null;
  telemetry: TelemetryNow | null;
  last_turn?: TurnView | null;
}

export interface TelemetrySample {
  received_at: number;
  cpu_percent: number | null;
  rss_bytes: number | null;
  temperature_celsius: number | null;
  stage_latency_ms: Record<string, number>;
}

export type AlertKind = "device_offline" | "device_error" | "mcp_circuit_open" | "quota_reached";

export interface AlertView {
  id: number;
  kind: AlertKind;
  device: string | null;
  detail: string;
  at: number;
  read: boolean;
}

export interface WakeWord {
  model: string;
  threshold: number;
}

export interface VoiceConfig {
  revision: number;
  language: string;
  sentences: Record<string, string[]>;
  slot_lists: Record<string, string[]>;
  wake_words: WakeWord[];
  created_at: number | null;
  created_by: string | null;
  published_at: number | null;
}

export interface Revision {
  revision: number;
  created_at: number;
  created_by: string;
  published_at: number | null;
}

export type Circuit = "closed" | "open" | "half_open";

export interface McpServer {
  name: string;
  transport: string;
  url?: string;
  headers?: Record<string, string>;
  timeout_seconds?: number;
  read_only_tools?: string[];
  updated_at?: number;
  source: "api" | "config";
  connected?: boolean;
  tools?: string[];
  circuit?: Circuit;
  last_error?: string | null;
}

export interface McpTest {
  ok: boolean;
  tools: { name: string; description: string | null }[];
  error: string | null;
}

export interface InvitationCheck {
  valid: boolean;
  tenant_id: string;
  role: Role;
  email: string;
}
