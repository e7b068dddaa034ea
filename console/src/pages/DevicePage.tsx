import { DeleteOutlined } from "@ant-design/icons";
import { App, Button, Card, Descriptions, Empty, Form, Input, Popconfirm, Radio, Space, Spin, Table, Typography } from "antd";
import { Suspense, lazy, useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { useNavigate, useParams } from "react-router-dom";

import type { ApiError } from "../api/client";
import type { DeviceView, TelemetrySample, TurnView } from "../api/types";
import { Can, useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { StateTag } from "../components/StateTag";
import { formatTime } from "../format";
import { useLive } from "../live/LiveContext";
import { StreamTag } from "./FleetPage";

const TelemetryCharts = lazy(() => import("./TelemetryCharts"));
const TELEMETRY_LIMIT = 240;

function Announce({ device }: { device: DeviceView }) {
  const { t } = useTranslation();
  const { client } = useAuth();
  const base = useTenantPath();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [form] = Form.useForm<{ text: string; target: "device" | "area" }>();
  const [busy, setBusy] = useState(false);

  const send = async (values: { text: string; target: "device" | "area" }) => {
    setBusy(true);
    try {
      const body = values.target === "area" ? { text: values.text, area: device.area } : { text: values.text, device: device.device };
      const r = await client.post<{ sent: string[] }>(`${base}/announce`, body);
      void message.success(t("device.announced", { count: r.sent.length }));
      form.resetFields(["text"]);
    } catch (e) {
      void message.error(errorText(e as ApiError));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("device.announce")}</h2>}>
      <Form form={form} layout="vertical" onFinish={send} initialValues={{ target: "device" }}>
        <Form.Item name="text" label={t("device.announceText")} rules={[{ required: true, max: 500, message: t("device.announceTextRule") }]}>
          <Input.TextArea rows={2} maxLength={500} />
        </Form.Item>
        {device.area && (
          <Form.Item name="target" label={t("device.announceTarget")}>
            <Radio.Group>
              <Radio value="device">{t("device.thisDevice")}</Radio>
              <Radio value="area">{t("device.wholeArea", { area: device.area })}</Radio>
            </Radio.Group>
          </Form.Item>
        )}
        <Button type="primary" htmlType="submit" loading={busy}>
          {t("device.speak")}
        </Button>
      </Form>
    </Card>
  );
}

export default function DevicePage() {
  const { t } = useTranslation();
  const { device: id = "" } = useParams();
  const { client, can } = useAuth();
  const base = useTenantPath();
  const { devices, subscribe, reloadFleet } = useLive();
  const navigate = useNavigate();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [fetched, setFetched] = useState<DeviceView | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [samples, setSamples] = useState<TelemetrySample[]>([]);
  const [turns, setTurns] = useState<TurnView[]>([]);
  const device = devices[id] ?? fetched;
  const path = `${base}/fleet/${encodeURIComponent(id)}`;

  const loadTelemetry = useCallback(() => {
    client
      .get<{ samples: TelemetrySample[] }>(`${path}/telemetry`, { limit: TELEMETRY_LIMIT })
      .then((r) => setSamples(r.samples))
      .catch(() => undefined);
  }, [client, path]);

  useEffect(() => {
    client.get<DeviceView>(path).then(setFetched).catch((e: ApiError) => setError(e));
    loadTelemetry();
    if (can("turns.read")) {
      client
        .get<{ turns: TurnView[] }>(`${base}/turns`, { device: id, limit: 20 })
        .then((r) => setTurns(r.turns))
        .catch(() => undefined);
    }
  }, [client, path, base, id, can, loadTelemetry]);

  useEffect(
    () =>
      subscribe((event) => {
        if (event.type === "device" && event.data.device === id) loadTelemetry();
        if (event.type === "turn" && event.data.device === id) {
          setTurns((prev) => [event.data as TurnView, ...prev.filter((x) => x.turn_id !== event.data.turn_id)].slice(0, 20));
        }
      }),
    [subscribe, id, loadTelemetry],
  );

  const revoke = async () => {
    try {
      await client.del(`${base}/devices/${encodeURIComponent(id)}`);
      void message.success(t("device.revoked"));
      reloadFleet();
      navigate("/fleet");
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  if (!device) {
    return (
      <>
        <PageTitle>{id}</PageTitle>
        {error ? <ErrorAlert error={error} /> : <Spin />}
      </>
    );
  }

  return (
    <>
      <PageTitle
        extra={
          <Space>
            <StreamTag />
            {device.enrolled && (
              <Can action="devices.revoke">
                <Popconfirm title={t("device.revokeConfirm", { device: id })} onConfirm={revoke} okText={t("device.revoke")} cancelText={t("common.cancel")}>
                  <Button danger icon={<DeleteOutlined />}>
                    {t("device.revoke")}
                  </Button>
                </Popconfirm>
              </Can>
            )}
          </Space>
        }
      >
        {device.name ? `${device.name} (${device.device})` : device.device}
      </PageTitle>
      <Space direction="vertical" size={16} style={{ width: "100%" }}>
        <Card size="small">
          <Descriptions column={{ xs: 1, md: 2, xl: 3 }} size="small">
            <Descriptions.Item label={t("fleet.state")}>
              <StateTag state={device.state} />
              {device.error && <Typography.Text type="danger">{device.error}</Typography.Text>}
            </Descriptions.Item>
            <Descriptions.Item label={t("fleet.area")}>{device.area ?? "—"}</Descriptions.Item>
            <Descriptions.Item label={t("fleet.lastSeen")}>{formatTime(device.last_seen)}</Descriptions.Item>
            <Descriptions.Item label={t("device.enrolled")}>{device.enrolled ? t("common.yes") : t("common.no")}</Descriptions.Item>
            <Descriptions.Item label={t("device.configApplied")}>{device.config_revision ?? "—"}</Descriptions.Item>
            <Descriptions.Item label={t("fleet.versions")}>
              {Object.entries(device.versions ?? {}).map(([k, v]) => `${k} ${v}`).join(", ") || "—"}
            </Descriptions.Item>
            <Descriptions.Item label={t("device.models")}>{(device.models ?? []).join(", ") || "—"}</Descriptions.Item>
          </Descriptions>
        </Card>
        <section aria-labelledby="telemetry-heading">
          <Typography.Title level={2} id="telemetry-heading" style={{ fontSize: 18 }}>
            {t("device.telemetry")}
          </Typography.Title>
          {samples.length ? (
            <Suspense fallback={<Spin />}>
              <TelemetryCharts samples={samples} />
            </Suspense>
          ) : (
            <Empty description={t("device.noTelemetry")} />
          )}
        </section>
        <Can action="devices.announce">
          <Announce device={device} />
        </Can>
        <Can action="turns.read">
          <section aria-labelledby="turns-heading">
            <Typography.Title level={2} id="turns-heading" style={{ fontSize: 18 }}>
              {t("device.recentTurns")}
            </Typography.Title>
            <Table<TurnView>
              rowKey="turn_id"
              size="small"
              dataSource={turns}
              pagination={false}
              locale={{ emptyText: t("device.noTurns") }}
              columns={[
                { title: t("turns.at"), dataIndex: "created_at", render: (s: number) => formatTime(s) },
                { title: t("turns.text"), dataIndex: "text", render: (x: string | null) => x ?? "—" },
                { title: t("turns.intent"), dataIndex: "intent", render: (x: string | null) => x ?? "—" },
                { title: t("turns.outcome"), dataIndex: "outcome", render: (x: string | null) => (x ? t(`outcome.${x}`, { defaultValue: x }) : "—") },
                { title: t("turns.reply"), dataIndex: "reply_text", render: (x: string | null) => x ?? "—" },
                { title: t("turns.latency"), dataIndex: "latency_ms", render: (x: number | null) => (x === null ? "—" : `${Math.round(x)} ms`) },
              ]}
            />
          </section>
        </Can>
      </Space>
    </>
  );
}
