import { Card, Layout, Typography } from "antd";
import { useEffect } from "react";
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";

import { LanguageSwitch } from "../components/AppLayout";

/** The frame of the signed-out pages: a header with the language switch, one card. */
export function AuthCard({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useTranslation();
  useEffect(() => {
    document.title = `${title} · Konak`;
  }, [title]);
  return (
    <Layout style={{ minHeight: "100vh" }}>
      <Layout.Header
        style={{ display: "flex", alignItems: "center", background: "#fff", borderBottom: "1px solid #d9d9d9" }}
      >
        <Typography.Text strong style={{ fontSize: 18 }}>
          {t("app.name")}
        </Typography.Text>
        <div style={{ marginLeft: "auto" }}>
          <LanguageSwitch />
        </div>
      </Layout.Header>
      <Layout.Content style={{ display: "flex", justifyContent: "center", padding: "48px 16px" }}>
        <Card style={{ width: 420, maxWidth: "100%" }}>
          <Typography.Title level={1} style={{ fontSize: 24, marginTop: 0 }}>
            {title}
          </Typography.Title>
          {children}
        </Card>
      </Layout.Content>
    </Layout>
  );
}
