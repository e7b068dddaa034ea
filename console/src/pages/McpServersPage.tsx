import { ApiOutlined, DeleteOutlined, EditOutlined, MinusCircleOutlined, PlusOutlined } from "@ant-design/icons";
import { App, Button, Form, Input, InputNumber, List, Modal, Popconfirm, Select, Space, Table, Tag, Typography } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import type { McpServer, McpTest } from "../api/types";
import { Can, useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";

interface ServerForm {
  name: string;
  url: string;
  timeout_seconds: number;
  headers: { key: string; value?: string }[];
  read_only_tools: string[];
}

function toBody(values: ServerForm, creating: boolean) {
  const body: Record<string, unknown> = {
    url: values.url,
    timeout_seconds: values.timeout_seconds,
    read_only_tools: values.read_only_tools ?? [],
    // an empty value keeps the stored one (values are never shown back)
    headers: Object.fromEntries((values.headers ?? []).map((h) => [h.key, h.value ? h.value : null])),
  };
  if (creating) body.name = values.name;
  return body;
}

function ServerEditor({ server, onClose }: { server: McpServer | "new"; onClose: (changed: boolean) => void }) {
  const { t } = useTranslation();
  const { client } = useAuth();
  const base = useTenantPath();
  const [form] = Form.useForm<ServerForm>();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const creating = server === "new";
  const initial: Partial<ServerForm> = creating
    ? { timeout_seconds: 10, headers: [], read_only_tools: [] }
    : {
        name: server.name,
        url: server.url,
        timeout_seconds: server.timeout_seconds,
        headers: Object.keys(server.headers ?? {}).map((key) => ({ key })),
        read_only_tools: server.read_only_tools ?? [],
      };

  const submit = async (values: ServerForm) => {
    setBusy(true);
    setError(null);
    try {
      if (creating) await client.post(`${base}/mcp-servers`, toBody(values, true));
      else await client.put(`${base}/mcp-servers/${encodeURIComponent(server.name)}`, toBody(values, false));
      onClose(true);
    } catch (e) {
      const err = e as ApiError;
      setError(err);
      form.setFields(
        err.details
          .map((d) => ({ name: d.path.split(".")[0] ?? "", errors: [d.message] }))
          .filter((f) => ["name", "url", "timeout_seconds", "read_only_tools"].includes(f.name)) as Parameters<typeof form.setFields>[0],
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      open
      destroyOnHidden
      title={creating ? t("mcp.addTitle") : t("mcp.editTitle", { name: server.name })}
      onCancel={() => onClose(false)}
      onOk={() => form.submit()}
      okText={t("common.save")}
      cancelText={t("common.cancel")}
      confirmLoading={busy}
      width={640}
    >
      <ErrorAlert error={error} />
      <Form form={form} layout="vertical" initialValues={initial} onFinish={submit}>
        {creating && (
          <Form.Item name="name" label={t("mcp.name")} rules={[{ required: true, pattern: /^[a-z0-9][a-z0-9_-]*$/, message: t("mcp.nameRule") }]}>
            <Input />
          </Form.Item>
        )}
        <Form.Item name="url" label={t("mcp.url")} rules={[{ required: true, type: "url", message: t("mcp.urlRule") }]}>
          <Input placeholder="https://mcp.example/mcp" />
        </Form.Item>
        <Form.Item name="timeout_seconds" label={t("mcp.timeout")}>
          <InputNumber min={0.5} max={120} step={0.5} />
        </Form.Item>
        <Form.Item name="read_only_tools" label={t("mcp.readOnlyTools")}>
          <Select mode="tags" tokenSeparators={[",", " "]} />
        </Form.Item>
        <Typography.Text strong>{t("mcp.headers")}</Typography.Text>
        {!creating && <Typography.Paragraph type="secondary">{t("mcp.headersKeep")}</Typography.Paragraph>}
        <Form.List name="headers">
          {(fields, { add, remove }) => (
            <>
              {fields.map((field) => (
                <Space key={field.key} align="start" wrap>
                  <Form.Item name={[field.name, "key"]} label={t("mcp.headerName")} rules={[{ required: true, pattern: /^[A-Za-z0-9-]+$/, message: t("mcp.headerNameRule") }]}>
                    <Input style={{ width: 180 }} />
                  </Form.Item>
                  <Form.Item name={[field.name, "value"]} label={t("mcp.headerValue")} rules={creating ? [{ required: true, message: t("mcp.headerValueRule") }] : []}>
                    <Input.Password style={{ width: 260 }} autoComplete="off" />
                  </Form.Item>
                  <Button icon={<MinusCircleOutlined />} aria-label={t("mcp.removeHeader")} onClick={() => remove(field.name)} style={{ marginTop: 30 }} />
                </Space>
              ))}
              <Button icon={<PlusOutlined />} onClick={() => add({ key: "" })}>
                {t("mcp.addHeader")}
              </Button>
            </>
          )}
        </Form.List>
      </Form>
    </Modal>
  );
}

export default function McpServersPage() {
  const { t } = useTranslation();
  const { client, can } = useAuth();
  const base = useTenantPath();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [servers, setServers] = useState<McpServer[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [editing, setEditing] = useState<McpServer | "new" | null>(null);
  const [tested, setTested] = useState<{ name: string; result: McpTest } | null>(null);
  const [testing, setTesting] = useState<string | null>(null);
  const writable = can("mcp.write");

  const load = useCallback(() => {
    setLoading(true);
    client
      .get<{ servers: McpServer[]; configured: McpServer[] }>(`${base}/mcp-servers`)
      .then((r) => setServers([...r.servers, ...r.configured]))
      .catch((e: ApiError) => setError(e))
      .finally(() => setLoading(false));
  }, [client, base]);
  useEffect(load, [load]);

  const remove = async (name: string) => {
    try {
      await client.del(`${base}/mcp-servers/${encodeURIComponent(name)}`);
      load();
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  const test = async (name: string) => {
    setTesting(name);
    try {
      setTested({ name, result: await client.post<McpTest>(`${base}/mcp-servers/${encodeURIComponent(name)}/test`) });
    } catch (e) {
      void message.error(errorText(e as ApiError));
    } finally {
      setTesting(null);
    }
  };

  return (
    <>
      <PageTitle
        extra={
          <Can action="mcp.write">
            <Button type="primary" icon={<PlusOutlined />} onClick={() => setEditing("new")}>
              {t("mcp.add")}
            </Button>
          </Can>
        }
      >
        {t("mcp.title")}
      </PageTitle>
      <ErrorAlert error={error} />
      <Table<McpServer>
        rowKey="name"
        loading={loading}
        dataSource={servers}
        pagination={false}
        locale={{ emptyText: t("mcp.empty") }}
        scroll={{ x: true }}
        columns={[
          { title: t("mcp.name"), dataIndex: "name" },
          { title: t("mcp.url"), dataIndex: "url", render: (u: string | undefined) => u ?? "—" },
          { title: t("mcp.source"), dataIndex: "source", render: (s: string) => t(`mcp.sources.${s}`) },
          {
            title: t("mcp.connection"),
            key: "connected",
            render: (_, s) => (s.connected === undefined ? "—" : <Tag>{s.connected ? t("mcp.connected") : t("mcp.disconnected")}</Tag>),
          },
          { title: t("mcp.circuit"), dataIndex: "circuit", render: (c: string | undefined) => (c ? <Tag>{t(`mcp.circuits.${c}`)}</Tag> : "—") },
          { title: t("mcp.lastError"), dataIndex: "last_error", render: (e: string | null | undefined) => e ?? "—" },
          { title: t("mcp.tools"), dataIndex: "tools", render: (tools: string[] | undefined) => (tools?.length ? tools.join(", ") : "—") },
          ...(writable
            ? [{
                title: t("common.actions"),
                key: "actions",
                render: (_: unknown, s: McpServer) => (
                  <Space>
                    <Button size="small" icon={<ApiOutlined />} loading={testing === s.name} onClick={() => void test(s.name)} aria-label={t("mcp.testLabel", { name: s.name })}>
                      {t("mcp.test")}
                    </Button>
                    {/* hub.toml's servers are changed in hub.toml, never here */}
                    {s.source === "api" && (
                      <>
                        <Button size="small" icon={<EditOutlined />} aria-label={t("mcp.editLabel", { name: s.name })} onClick={() => setEditing(s)} />
                        <Popconfirm title={t("mcp.deleteConfirm", { name: s.name })} okText={t("common.delete")} cancelText={t("common.cancel")} onConfirm={() => remove(s.name)}>
                          <Button size="small" danger icon={<DeleteOutlined />} aria-label={t("mcp.deleteLabel", { name: s.name })} />
                        </Popconfirm>
                      </>
                    )}
                  </Space>
                ),
              }]
            : []),
        ]}
      />
      {editing && (
        <ServerEditor
          server={editing}
          onClose={(changed) => {
            setEditing(null);
            if (changed) load();
          }}
        />
      )}
      <Modal
        open={tested !== null}
        title={tested ? t("mcp.testTitle", { name: tested.name }) : ""}
        onCancel={() => setTested(null)}
        footer={<Button onClick={() => setTested(null)}>{t("common.close")}</Button>}
      >
        {tested && (
          <>
            <Typography.Paragraph role="status">
              <Tag>{tested.result.ok ? t("mcp.testOk") : t("mcp.testFailed")}</Tag>
              {tested.result.error}
            </Typography.Paragraph>
            <List
              size="small"
              header={t("mcp.toolsListed", { count: tested.result.tools.length })}
              dataSource={tested.result.tools}
              renderItem={(tool) => (
                <List.Item>
                  <List.Item.Meta title={<code>{tool.name}</code>} description={tool.description} />
                </List.Item>
              )}
            />
          </>
        )}
      </Modal>
    </>
  );
}
