import { DeleteOutlined } from "@ant-design/icons";
import { App, Button, Card, Form, Input, Popconfirm, Select, Space, Table } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import { ROLES } from "../api/types";
import type { Member, Role } from "../api/types";
import { useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";

export default function UsersPage() {
  const { t } = useTranslation();
  const { client, can, me } = useAuth();
  const base = useTenantPath();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [form] = Form.useForm<{ email: string; role: Role }>();
  const [users, setUsers] = useState<Member[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [inviteError, setInviteError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [busy, setBusy] = useState(false);
  const writable = can("users.write");
  const roleOptions = ROLES.map((r) => ({ value: r, label: t(`roles.${r}`) }));

  const load = useCallback(() => {
    setLoading(true);
    client
      .get<{ users: Member[] }>(`${base}/users`)
      .then((r) => setUsers(r.users))
      .catch((e: ApiError) => setError(e))
      .finally(() => setLoading(false));
  }, [client, base]);
  useEffect(load, [load]);

  const invite = async (values: { email: string; role: Role }) => {
    setBusy(true);
    setInviteError(null);
    try {
      await client.post(`${base}/users`, values);
      void message.success(t("users.invited", { email: values.email }));
      form.resetFields();
    } catch (e) {
      setInviteError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const act = async (run: () => Promise<unknown>) => {
    try {
      await run();
      load();
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  return (
    <>
      <PageTitle>{t("users.title")}</PageTitle>
      <ErrorAlert error={error} />
      {writable && (
        <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("users.invite")}</h2>} style={{ marginBottom: 16 }}>
          <ErrorAlert error={inviteError} />
          <Form form={form} layout="inline" onFinish={invite} initialValues={{ role: "member" }}>
            <Form.Item name="email" label={t("users.email")} rules={[{ required: true, type: "email", message: t("login.emailRequired") }]}>
              <Input style={{ width: 260 }} autoComplete="off" />
            </Form.Item>
            <Form.Item name="role" label={t("users.role")}>
              <Select style={{ width: 160 }} options={roleOptions} />
            </Form.Item>
            <Button type="primary" htmlType="submit" loading={busy}>
              {t("users.sendInvite")}
            </Button>
          </Form>
        </Card>
      )}
      <Table<Member>
        rowKey="user_id"
        loading={loading}
        dataSource={users}
        pagination={{ pageSize: 50, hideOnSinglePage: true }}
        locale={{ emptyText: t("users.empty") }}
        columns={[
          { title: t("users.email"), dataIndex: "email" },
          {
            title: t("users.role"),
            key: "role",
            render: (_, u) =>
              writable && u.user_id !== me?.user_id ? (
                <Select<Role>
                  aria-label={t("users.roleOf", { email: u.email })}
                  value={u.role}
                  style={{ width: 160 }}
                  options={roleOptions}
                  onChange={(role) => void act(() => client.put(`${base}/users/${encodeURIComponent(u.user_id)}/role`, { role }))}
                />
              ) : (
                t(`roles.${u.role}`)
              ),
          },
          ...(writable
            ? [{
                title: t("common.actions"),
                key: "actions",
                render: (_: unknown, u: Member) =>
                  u.user_id !== me?.user_id && (
                    <Space>
                      <Popconfirm title={t("users.removeConfirm", { email: u.email })} okText={t("users.remove")} cancelText={t("common.cancel")} onConfirm={() => act(() => client.del(`${base}/users/${encodeURIComponent(u.user_id)}`))}>
                        <Button size="small" danger icon={<DeleteOutlined />} aria-label={t("users.removeLabel", { email: u.email })} />
                      </Popconfirm>
                    </Space>
                  ),
              }]
            : []),
        ]}
      />
    </>
  );
}
