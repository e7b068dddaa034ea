import { BellOutlined, KeyOutlined, LogoutOutlined, UserOutlined } from "@ant-design/icons";
import { App, Badge, Button, Dropdown, Layout, Menu, Select, Space, Typography } from "antd";
import { useState } from "react";
import type { MenuProps } from "antd";
import { useTranslation } from "react-i18next";
import { Link, Outlet, useLocation, useNavigate } from "react-router-dom";

import { useAuth } from "../auth/AuthContext";
import type { Action } from "../auth/permissions";
import { LANGUAGES, setLanguage } from "../i18n";
import type { Language } from "../i18n";
import { useLive } from "../live/LiveContext";
import { PasswordDialog } from "./PasswordDialog";

interface NavItem {
  path: string;
  key: string;
  action?: Action;
  platform?: boolean;
}

export const NAV: NavItem[] = [
  { path: "/fleet", key: "fleet", action: "devices.read" },
  { path: "/voice", key: "voice", action: "voice.read" },
  { path: "/enrolment", key: "enrolment", action: "devices.claim" },
  { path: "/users", key: "users", action: "users.read" },
  { path: "/mcp", key: "mcp", action: "mcp.read" },
  { path: "/audit", key: "audit", action: "audit.read" },
  { path: "/alerts", key: "alerts", action: "alerts.read" },
  { path: "/tenants", key: "tenants", platform: true },
];

export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  return (
    <Select<Language>
      aria-label={t("header.language")}
      value={i18n.language as Language}
      onChange={setLanguage}
      style={{ width: 110 }}
      options={LANGUAGES.map((l) => ({ value: l, label: t(`languages.${l}`) }))}
    />
  );
}

export function AppLayout() {
  const { t } = useTranslation();
  const { me, tenants, tenant, setTenant, can, canPlatform, logout } = useAuth();
  const { unread } = useLive();
  const location = useLocation();
  const navigate = useNavigate();
  const { message } = App.useApp();
  const [changing, setChanging] = useState(false);

  const items: MenuProps["items"] = NAV.filter((n) =>
    n.platform ? canPlatform("tenants.create") : n.action ? can(n.action) : true,
  ).map((n) => ({ key: n.path, label: <Link to={n.path}>{t(`nav.${n.key}`)}</Link> }));
  const selected = NAV.find((n) => location.pathname.startsWith(n.path))?.path ?? "";

  const userMenu: MenuProps = {
    items: [
      { key: "password", icon: <KeyOutlined />, label: t("header.changePassword"), onClick: () => setChanging(true) },
      {
        key: "logout",
        icon: <LogoutOutlined />,
        label: t("header.logout"),
        onClick: () => {
          void logout().then(() => navigate("/login"));
        },
      },
    ],
  };

  return (
    <Layout style={{ minHeight: "100vh" }}>
      <Layout.Header
        style={{
          display: "flex",
          alignItems: "center",
          gap: 16,
          background: "#fff",
          borderBottom: "1px solid #d9d9d9",
          paddingInline: 24,
        }}
      >
        <Typography.Text strong style={{ fontSize: 18 }}>
          {t("app.name")}
        </Typography.Text>
        <Space style={{ marginLeft: "auto" }} wrap>
          {tenants.length > 1 && (
            <Select
              aria-label={t("header.tenant")}
              value={tenant ?? undefined}
              onChange={setTenant}
              style={{ minWidth: 160 }}
              options={tenants.map((x) => ({ value: x.tenant_id, label: x.name || x.tenant_id }))}
            />
          )}
          {tenants.length === 1 && <Typography.Text>{tenants[0]?.name}</Typography.Text>}
          <LanguageSwitch />
          {can("alerts.read") && (
            <Link to="/alerts" aria-label={t("header.alerts", { count: unread })}>
              <Badge count={unread} style={{ backgroundColor: "#a8071a" }}>
                <BellOutlined style={{ fontSize: 20, color: "rgba(0,0,0,0.88)" }} aria-hidden />
              </Badge>
            </Link>
          )}
          <Dropdown menu={userMenu} trigger={["click"]}>
            <Button icon={<UserOutlined />} aria-label={t("header.account", { email: me?.email ?? "" })}>
              {me?.email}
            </Button>
          </Dropdown>
        </Space>
      </Layout.Header>
      {changing && (
        <PasswordDialog
          onClose={(changed) => {
            setChanging(false);
            if (changed) {
              void message.success(t("password.changed"));
              void logout().then(() => navigate("/login"));
            }
          }}
        />
      )}
      <Layout>
        <Layout.Sider width={200} theme="light" breakpoint="md" collapsedWidth={0}>
          <nav aria-label={t("nav.label")}>
            <Menu mode="inline" selectedKeys={[selected]} items={items} style={{ borderInlineEnd: 0 }} />
          </nav>
        </Layout.Sider>
        <Layout.Content style={{ padding: 24 }}>
          <Outlet />
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
