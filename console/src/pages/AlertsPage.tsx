import { CheckOutlined } from "@ant-design/icons";
import { App, Button, Switch, Table, Tag, Typography } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router-dom";

import type { ApiError } from "../api/client";
import type { AlertView } from "../api/types";
import { useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { formatTime } from "../format";
import { useLive } from "../live/LiveContext";

export default function AlertsPage() {
  const { t } = useTranslation();
  const { client } = useAuth();
  const base = useTenantPath();
  const { setUnread, subscribe } = useLive();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [alerts, setAlerts] = useState<AlertView[]>([]);
  const [onlyUnread, setOnlyUnread] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);

  const load = useCallback(() => {
    setLoading(true);
    client
      .get<{ alerts: AlertView[]; unread: number }>(`${base}/alerts`, { unread: onlyUnread || undefined, limit: 100 })
      .then((r) => {
        setAlerts(r.alerts);
        setUnread(() => r.unread);
      })
      .catch((e: ApiError) => setError(e))
      .finally(() => setLoading(false));
  }, [client, base, onlyUnread, setUnread]);
  useEffect(load, [load]);
  useEffect(() => subscribe((e) => e.type === "alert" && setAlerts((prev) => [e.data as AlertView, ...prev])), [subscribe]);

  const markRead = async (alert: AlertView) => {
    try {
      await client.post(`${base}/alerts/${alert.id}/read`);
      setAlerts((prev) => prev.map((a) => (a.id === alert.id ? { ...a, read: true } : a)));
      setUnread((n) => Math.max(0, n - 1));
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  const markAll = async () => {
    try {
      await client.post(`${base}/alerts/read-all`);
      setAlerts((prev) => prev.map((a) => ({ ...a, read: true })));
      setUnread(() => 0);
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  return (
    <>
      <PageTitle
        extra={
          <Button icon={<CheckOutlined />} onClick={() => void markAll()}>
            {t("alerts.markAll")}
          </Button>
        }
      >
        {t("alerts.title")}
      </PageTitle>
      <ErrorAlert error={error} />
      <label style={{ display: "inline-flex", gap: 8, alignItems: "center", marginBottom: 16 }}>
        <Switch checked={onlyUnread} onChange={setOnlyUnread} />
        <Typography.Text>{t("alerts.onlyUnread")}</Typography.Text>
      </label>
      <Table<AlertView>
        rowKey="id"
        loading={loading}
        dataSource={alerts}
        pagination={{ pageSize: 50, hideOnSinglePage: true }}
        locale={{ emptyText: t("alerts.empty") }}
        columns={[
          { title: t("alerts.at"), dataIndex: "at", render: (s: number) => formatTime(s) },
          { title: t("alerts.kind"), dataIndex: "kind", render: (k: string) => t(`alerts.kinds.${k}`, { defaultValue: k }) },
          {
            title: t("fleet.device"),
            dataIndex: "device",
            render: (d: string | null) => (d ? <Link to={`/fleet/${encodeURIComponent(d)}`}>{d}</Link> : "—"),
          },
          { title: t("alerts.detail"), dataIndex: "detail" },
          {
            title: t("alerts.status"),
            key: "read",
            render: (_, a) => <Tag style={a.read ? undefined : { fontWeight: 600 }}>{a.read ? t("alerts.read") : t("alerts.unread")}</Tag>,
          },
          {
            title: t("common.actions"),
            key: "actions",
            render: (_, a) =>
              !a.read && (
                <Button size="small" icon={<CheckOutlined />} onClick={() => void markRead(a)} aria-label={t("alerts.markReadLabel", { id: a.id })}>
                  {t("alerts.markRead")}
                </Button>
              ),
          },
        ]}
      />
    </>
  );
}
