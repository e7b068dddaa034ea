// What the signed-in user may do in a tenant: `permissions` from /api/auth/me, or (from a
// hub that does not send it yet) derived from the role exactly as konak/hub/security/rbac.py.
import type { Me, Role } from "../api/types";

export type Action =
  | "tenant.read"
  | "users.read"
  | "users.write"
  | "devices.read"
  | "devices.claim"
  | "devices.revoke"
  | "devices.update"
  | "audit.read"
  | "mcp.read"
  | "mcp.write"
  | "turns.read"
  | "devices.announce"
  | "voice.read"
  | "voice.write"
  | "alerts.read"
  | "knowledge.read"
  | "knowledge.write"
  | "knowledge.import"
  | "knowledge.export";

const READONLY: Action[] = ["tenant.read", "devices.read", "voice.read", "alerts.read", "knowledge.read"];
const MEMBER: Action[] = [...READONLY, "turns.read", "devices.announce"];
const OPERATOR: Action[] = [
  ...MEMBER,
  "devices.claim",
  "devices.revoke",
  "devices.update",
  "mcp.read",
  "voice.write",
  "knowledge.write",
  "knowledge.import",
  "knowledge.export",
];
const ADMIN: Action[] = [...OPERATOR, "users.read", "users.write", "audit.read", "mcp.write"];

export const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  admin: ADMIN,
  operator: OPERATOR,
  member: MEMBER,
  readonly: READONLY,
};

/** The actions `me` holds in `tenant` (none for a tenant they have no role in). */
export function actionsIn(me: Me | null, tenant: string | null): ReadonlySet<string> {
  if (!me || !tenant) return new Set();
  const listed = me.permissions?.[tenant];
  if (listed) return new Set(listed);
  if (me.superadmin) return new Set(ADMIN);
  const role = me.roles[tenant];
  return new Set(role ? ROLE_ACTIONS[role] : []);
}

/** Whether `me` may take a platform action (creating tenants). */
export function mayOnPlatform(me: Me | null, action: "tenants.create"): boolean {
  if (!me) return false;
  if (me.platform_permissions) return me.platform_permissions.includes(action);
  return me.superadmin;
}
