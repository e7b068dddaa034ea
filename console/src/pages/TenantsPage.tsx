import { App, Button, Card, Form, Input, Table } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import type { Tenant } from "../api/types";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";

export default function TenantsPage() {
  const { t } = useTranslation();
  const { client, reload } = useAuth();
  const { message } = App.useApp();
  const [form] = Form.useForm<Tenant>();
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [createError, setCreateError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(() => {
    client
      .get<{ tenants: Tenant[] }>("/api/tenants")
      .then((r) => setTenants(r.tenants))
      .catch((e: ApiError) => setError(e));
  }, [client]);
  useEffect(load, [load]);

  const create = async (values: Tenant) => {
    setBusy(true);
    setCreateError(null);
    try {
      await client.post("/api/tenants", values);
      void message.success(t("tenants.created", { name: values.name }));
      form.resetFields();
      load();
      void reload();
    } catch (e) {
      setCreateError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageTitle>{t("tenants.title")}</PageTitle>
      <ErrorAlert error={error} />
      <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("tenants.create")}</h2>} style={{ marginBottom: 16 }}>
        <ErrorAlert error={createError} />
        <Form form={form} layout="inline" onFinish={create}>
          <Form.Item name="tenant_id" label={t("tenants.id")} rules={[{ required: true, pattern: /^[a-z0-9][a-z0-9_-]*$/, max: 64, message: t("tenants.idRule") }]}>
            <Input style={{ width: 180 }} />
          </Form.Item>
          <Form.Item name="name" label={t("tenants.name")} rules={[{ required: true, max: 200, message: t("tenants.nameRule") }]}>
            <Input style={{ width: 240 }} />
          </Form.Item>
          <Button type="primary" htmlType="submit" loading={busy}>
            {t("tenants.createButton")}
          </Button>
        </Form>
      </Card>
      <Table<Tenant>
        rowKey="tenant_id"
        dataSource={tenants}
        pagination={{ pageSize: 50, hideOnSinglePage: true }}
        columns={[
          { title: t("tenants.id"), dataIndex: "tenant_id" },
          { title: t("tenants.name"), dataIndex: "name" },
        ]}
      />
    </>
  );
}
