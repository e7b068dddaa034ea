import { screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { Me } from "../api/types";
import { AppLayout } from "../components/AppLayout";
import McpServersPage from "../pages/McpServersPage";
import VoiceConfigPage from "../pages/VoiceConfigPage";
import UsersPage from "../pages/UsersPage";
import { renderAs, user } from "../test/render";
import { actionsIn, mayOnPlatform } from "./permissions";

const WRITES = ["users.write", "devices.claim", "devices.revoke", "mcp.write", "voice.write", "devices.announce"];

describe("actionsIn", () => {
  it("gives a readonly user no write action", () => {
    const actions = actionsIn(user("readonly"), "acme");
    for (const write of WRITES) expect(actions.has(write)).toBe(false);
    expect(actions.has("devices.read")).toBe(true);
  });

  it("prefers the permissions the hub lists over the role", () => {
    const me: Me = { ...user("admin"), permissions: { acme: ["devices.read"] } };
    expect([...actionsIn(me, "acme")]).toEqual(["devices.read"]);
  });

  it("gives nothing in a tenant without a role", () => {
    expect(actionsIn(user("admin"), "other").size).toBe(0);
  });

  it("lets only the superadmin create tenants", () => {
    expect(mayOnPlatform(user("admin"), "tenants.create")).toBe(false);
    expect(mayOnPlatform(user("admin", { superadmin: true }), "tenants.create")).toBe(true);
    expect(mayOnPlatform(user("admin", { superadmin: true, platform_permissions: [] }), "tenants.create")).toBe(false);
  });
});

const SERVERS = {
  "/api/tenants/acme/mcp-servers": {
    servers: [{ name: "weather", transport: "http", url: "https://w.example/mcp", source: "api", connected: true, tools: ["forecast"], circuit: "closed", last_error: null }],
    configured: [],
  },
};

const VOICE = {
  "/api/tenants/acme/voice-config": {
    revision: 3,
    language: "en",
    sentences: { HassTurnOn: ["turn on [the] {name}"] },
    slot_lists: { name: ["lamp"] },
    wake_words: [{ model: "okay_nabu", threshold: 0.5 }],
    created_at: 1,
    created_by: "a@example.org",
    published_at: null,
  },
  "/api/tenants/acme/voice-config/revisions": { revisions: [{ revision: 3, created_at: 1, created_by: "a", published_at: null }] },
};

describe("permission gating in the pages", () => {
  it("shows an admin every MCP server action", async () => {
    renderAs(user("admin"), <McpServersPage />, SERVERS);
    expect(await screen.findByText("weather")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: /add server/i })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Edit weather" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delete weather" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Test the connection to weather" })).toBeInTheDocument();
  });

  it("shows an operator the MCP servers without any write action", async () => {
    renderAs(user("operator"), <McpServersPage />, SERVERS);
    expect(await screen.findByText("weather")).toBeInTheDocument();
    expect(screen.queryByRole("button")).toBeNull();
  });

  it("shows a readonly user the voice config with no field and no button", async () => {
    renderAs(user("readonly"), <VoiceConfigPage />, VOICE);
    expect(await screen.findByText("turn on [the] {name}")).toBeInTheDocument();
    expect(screen.queryByRole("textbox")).toBeNull();
    expect(screen.queryByRole("spinbutton")).toBeNull();
    expect(screen.queryByRole("button")).toBeNull();
  });

  it("gives an operator the voice config form with save and publish", async () => {
    renderAs(user("operator"), <VoiceConfigPage />, VOICE);
    expect(await screen.findByRole("button", { name: /save as a new revision/i })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Publish revision 3" })).toBeInTheDocument();
    await waitFor(() => expect(screen.getByDisplayValue("lamp")).toBeInTheDocument());
  });

  it("lets an admin change others' roles but not their own", async () => {
    renderAs(user("admin"), <UsersPage />, {
      "/api/tenants/acme/users": {
        users: [
          { user_id: "u1", email: "me@example.org", role: "admin" },
          { user_id: "u2", email: "op@example.org", role: "operator" },
        ],
      },
    });
    expect(await screen.findByRole("combobox", { name: "Role of op@example.org" })).toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Role of me@example.org" })).toBeNull();
    expect(screen.getByRole("button", { name: "Remove op@example.org" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Remove me@example.org" })).toBeNull();
  });

  it("offers a readonly user only the pages it may read", async () => {
    renderAs(user("readonly"), <AppLayout />);
    const nav = await screen.findByRole("navigation", { name: "Main" });
    await waitFor(() => expect(nav).toHaveTextContent("Fleet"));
    for (const hidden of ["Enrolment", "Users", "MCP servers", "Audit log", "Tenants"]) {
      expect(nav).not.toHaveTextContent(hidden);
    }
    expect(nav).toHaveTextContent("Voice config");
    expect(nav).toHaveTextContent("Alerts");
  });
});
