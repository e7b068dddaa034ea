import { DeleteOutlined, PlusOutlined } from "@ant-design/icons";
import { App, Button, Card, Descriptions, Form, Input, InputNumber, Space, Spin, Table, Tag, Typography } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import type { Revision, VoiceConfig } from "../api/types";
import { useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { formatTime } from "../format";
import { useLive } from "../live/LiveContext";
import { fromForm, placeErrors, toForm } from "./voiceForm";
import type { VoiceForm } from "./voiceForm";

function H2({ children }: { children: string }) {
  return <h2 style={{ fontSize: 16, margin: 0 }}>{children}</h2>;
}

function ReadOnlyConfig({ config }: { config: VoiceConfig }) {
  const { t } = useTranslation();
  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Card size="small" title={<H2>{t("voice.sentences")}</H2>}>
        <Descriptions column={1} size="small" bordered>
          {Object.entries(config.sentences).map(([intent, templates]) => (
            <Descriptions.Item key={intent} label={intent}>
              {templates.map((x) => <div key={x}>{x}</div>)}
            </Descriptions.Item>
          ))}
        </Descriptions>
      </Card>
      <Card size="small" title={<H2>{t("voice.slotLists")}</H2>}>
        <Descriptions column={1} size="small" bordered>
          {Object.entries(config.slot_lists).map(([name, values]) => (
            <Descriptions.Item key={name} label={name}>{values.join(", ")}</Descriptions.Item>
          ))}
        </Descriptions>
      </Card>
      <Card size="small" title={<H2>{t("voice.wakeWords")}</H2>}>
        <Descriptions column={1} size="small" bordered>
          {config.wake_words.map((w) => (
            <Descriptions.Item key={w.model} label={w.model}>{w.threshold}</Descriptions.Item>
          ))}
        </Descriptions>
      </Card>
    </Space>
  );
}

export default function VoiceConfigPage() {
  const { t } = useTranslation();
  const { client, can } = useAuth();
  const base = useTenantPath();
  const { devices, subscribe } = useLive();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [form] = Form.useForm<VoiceForm>();
  const [config, setConfig] = useState<VoiceConfig | null>(null);
  const [revisions, setRevisions] = useState<Revision[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const writable = can("voice.write");

  const load = useCallback(() => {
    client
      .get<VoiceConfig>(`${base}/voice-config`)
      .then((c) => {
        setConfig(c);
        form.setFieldsValue(toForm(c));
      })
      .catch((e: ApiError) => setError(e));
    client
      .get<{ revisions: Revision[] }>(`${base}/voice-config/revisions`, { limit: 50 })
      .then((r) => setRevisions(r.revisions))
      .catch(() => undefined);
  }, [client, base, form]);

  useEffect(load, [load]);
  useEffect(() => subscribe((e) => e.type === "voice_config" && load()), [subscribe, load]);

  const save = async (values: VoiceForm) => {
    if (!config) return;
    setBusy(true);
    setError(null);
    try {
      const saved = await client.put<VoiceConfig>(`${base}/voice-config`, { ...fromForm(values), base_revision: config.revision });
      void message.success(t("voice.saved", { revision: saved.revision }));
      load();
    } catch (e) {
      const err = e as ApiError;
      setError(err);
      form.setFields(placeErrors(values, err.details, (n) => t("voice.line", { n })) as Parameters<typeof form.setFields>[0]);
    } finally {
      setBusy(false);
    }
  };

  const publish = async (revision?: number) => {
    setBusy(true);
    try {
      const r = await client.post<{ revision: number; devices: string[] }>(`${base}/voice-config/publish`, revision === undefined ? {} : { revision });
      void message.success(t("voice.published", { revision: r.revision, count: r.devices.length }));
      load();
    } catch (e) {
      void message.error(errorText(e as ApiError));
    } finally {
      setBusy(false);
    }
  };

  const applied = Object.values(devices).sort((a, b) => a.device.localeCompare(b.device));
  const publishedRevision = revisions.find((r) => r.published_at !== null)?.revision ?? null;

  return (
    <>
      <PageTitle
        extra={
          config && (
            <Space wrap>
              <Typography.Text>{t("voice.revision", { revision: config.revision })}</Typography.Text>
              {config.published_at ? <Tag>{t("voice.publishedAt", { at: formatTime(config.published_at) })}</Tag> : <Tag>{t("voice.notPublished")}</Tag>}
              {writable && config.revision > 0 && (
                <Button onClick={() => void publish()} loading={busy}>
                  {t("voice.publish")}
                </Button>
              )}
            </Space>
          )
        }
      >
        {t("voice.title")}
      </PageTitle>
      <ErrorAlert error={error} />
      {!config && !error && <Spin />}
      {config && !writable && <ReadOnlyConfig config={config} />}
      {config && writable && (
        <Form form={form} layout="vertical" onFinish={save}>
          <Space direction="vertical" size={16} style={{ width: "100%" }}>
            <Form.Item name="language" label={t("voice.language")} rules={[{ required: true }]} style={{ maxWidth: 200, marginBottom: 0 }}>
              <Input />
            </Form.Item>
            <Card size="small" title={<H2>{t("voice.sentences")}</H2>}>
              <Typography.Paragraph type="secondary">{t("voice.sentencesHelp")}</Typography.Paragraph>
              <Form.List name="sentences">
                {(fields, { add, remove }) => (
                  <>
                    {fields.map((field) => (
                      <Space key={field.key} align="start" style={{ display: "flex" }} wrap>
                        <Form.Item name={[field.name, "intent"]} label={t("voice.intent")} rules={[{ required: true, message: t("voice.intentRequired") }]}>
                          <Input style={{ width: 200 }} />
                        </Form.Item>
                        <Form.Item name={[field.name, "templates"]} label={t("voice.templates")} style={{ minWidth: 400 }}>
                          <Input.TextArea autoSize={{ minRows: 2, maxRows: 10 }} />
                        </Form.Item>
                        <Button icon={<DeleteOutlined />} aria-label={t("voice.removeIntent")} onClick={() => remove(field.name)} style={{ marginTop: 30 }} />
                      </Space>
                    ))}
                    <Button icon={<PlusOutlined />} onClick={() => add({ intent: "", templates: "" })}>
                      {t("voice.addIntent")}
                    </Button>
                  </>
                )}
              </Form.List>
            </Card>
            <Card size="small" title={<H2>{t("voice.slotLists")}</H2>}>
              <Typography.Paragraph type="secondary">{t("voice.slotsHelp")}</Typography.Paragraph>
              <Form.List name="slots">
                {(fields, { add, remove }) => (
                  <>
                    {fields.map((field) => (
                      <Space key={field.key} align="start" style={{ display: "flex" }} wrap>
                        <Form.Item name={[field.name, "name"]} label={t("voice.slotName")} rules={[{ required: true, message: t("voice.slotNameRequired") }]}>
                          <Input style={{ width: 200 }} />
                        </Form.Item>
                        <Form.Item name={[field.name, "values"]} label={t("voice.slotValues")} style={{ minWidth: 400 }}>
                          <Input.TextArea autoSize={{ minRows: 2, maxRows: 10 }} />
                        </Form.Item>
                        <Button icon={<DeleteOutlined />} aria-label={t("voice.removeSlot")} onClick={() => remove(field.name)} style={{ marginTop: 30 }} />
                      </Space>
                    ))}
                    <Button icon={<PlusOutlined />} onClick={() => add({ name: "", values: "" })}>
                      {t("voice.addSlot")}
                    </Button>
                  </>
                )}
              </Form.List>
            </Card>
            <Card size="small" title={<H2>{t("voice.wakeWords")}</H2>}>
              <Form.List name="wake">
                {(fields, { add, remove }) => (
                  <>
                    {fields.map((field) => (
                      <Space key={field.key} align="start" style={{ display: "flex" }} wrap>
                        <Form.Item name={[field.name, "model"]} label={t("voice.wakeModel")} rules={[{ required: true, message: t("voice.wakeModelRequired") }]}>
                          <Input style={{ width: 200 }} />
                        </Form.Item>
                        <Form.Item name={[field.name, "threshold"]} label={t("voice.threshold")} rules={[{ required: true, message: t("voice.thresholdRule") }]}>
                          <InputNumber min={0.01} max={0.99} step={0.05} />
                        </Form.Item>
                        <Button icon={<DeleteOutlined />} aria-label={t("voice.removeWake")} onClick={() => remove(field.name)} style={{ marginTop: 30 }} />
                      </Space>
                    ))}
                    <Button icon={<PlusOutlined />} onClick={() => add({ model: "", threshold: 0.5 })}>
                      {t("voice.addWake")}
                    </Button>
                  </>
                )}
              </Form.List>
            </Card>
            <Button type="primary" htmlType="submit" loading={busy}>
              {t("voice.save")}
            </Button>
          </Space>
        </Form>
      )}
      <Space direction="vertical" size={16} style={{ width: "100%", marginTop: 24 }}>
        <Card size="small" title={<H2>{t("voice.revisions")}</H2>}>
          <Table<Revision>
            rowKey="revision"
            size="small"
            dataSource={revisions}
            pagination={false}
            locale={{ emptyText: t("voice.noRevisions") }}
            columns={[
              { title: t("voice.revisionCol"), dataIndex: "revision" },
              { title: t("voice.createdAt"), dataIndex: "created_at", render: (s: number) => formatTime(s) },
              { title: t("voice.createdBy"), dataIndex: "created_by" },
              { title: t("voice.publishedCol"), dataIndex: "published_at", render: (s: number | null) => formatTime(s) },
              ...(writable
                ? [{
                    title: t("common.actions"),
                    key: "actions",
                    render: (_: unknown, r: Revision) => (
                      <Button size="small" onClick={() => void publish(r.revision)} aria-label={t("voice.publishRevision", { revision: r.revision })}>
                        {t("voice.publish")}
                      </Button>
                    ),
                  }]
                : []),
            ]}
          />
        </Card>
        <Card size="small" title={<H2>{t("voice.applied")}</H2>}>
          <Table
            rowKey="device"
            size="small"
            dataSource={applied}
            pagination={false}
            locale={{ emptyText: t("fleet.empty") }}
            columns={[
              { title: t("fleet.device"), dataIndex: "device" },
              { title: t("device.configApplied"), dataIndex: "config_revision", render: (r: number | null) => r ?? "—" },
              {
                title: t("voice.upToDate"),
                key: "current",
                render: (_: unknown, d: { config_revision: number | null }) =>
                  publishedRevision === null ? "—" : d.config_revision === publishedRevision ? t("common.yes") : t("voice.behind"),
              },
            ]}
          />
        </Card>
      </Space>
    </>
  );
}
