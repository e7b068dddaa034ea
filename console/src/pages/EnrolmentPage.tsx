import { DeleteOutlined } from "@ant-design/icons";
import { Alert, App, Button, Card, Form, Input, Modal, Popconfirm, Select, Space, Table, Tag, Typography } from "antd";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import type { Claim, MintedClaim } from "../api/types";
import { Can, useAuth, useTenantPath } from "../auth/AuthContext";
import { CopyField } from "../components/CopyField";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { formatTime } from "../format";

const EXPIRY_OPTIONS = [3600, 86400, 7 * 86400];

interface EnrolledDevice {
  device: string;
  name: string;
  area: string | null;
  enrolled_at: number;
  revoked: boolean;
}

/** The command a device runs with the token (the hub's own when it sends one). */
export function enrollCommand(minted: MintedClaim, origin: string): string {
  return minted.enroll_command ?? `konak daemon enroll --hub ${origin} --token ${minted.token} --name "NAME"`;
}

export default function EnrolmentPage() {
  const { t } = useTranslation();
  const { client } = useAuth();
  const base = useTenantPath();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [claims, setClaims] = useState<Claim[]>([]);
  const [claimsError, setClaimsError] = useState<ApiError | null>(null);
  const [enrolled, setEnrolled] = useState<EnrolledDevice[]>([]);
  const [minted, setMinted] = useState<MintedClaim | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(() => {
    client
      .get<{ claims: Claim[] }>(`${base}/claims`)
      .then((r) => {
        setClaims(r.claims);
        setClaimsError(null);
      })
      .catch((e: ApiError) => setClaimsError(e));
    client
      .get<{ devices: EnrolledDevice[] }>(`${base}/devices`)
      .then((r) => setEnrolled(r.devices))
      .catch(() => undefined);
  }, [client, base]);
  useEffect(load, [load]);

  const mint = async (values: { expires: number; device?: string }) => {
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { expires_in_seconds: values.expires };
      if (values.device?.trim()) body.device = values.device.trim();
      setMinted(await client.post<MintedClaim>(`${base}/claims`, body));
      load();
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const revokeClaim = async (claim: Claim) => {
    try {
      await client.del(`${base}/claims/${encodeURIComponent(claim.claim_id)}`);
      load();
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  const revokeDevice = async (device: string) => {
    try {
      await client.del(`${base}/devices/${encodeURIComponent(device)}`);
      void message.success(t("device.revoked"));
      load();
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  const claimState = (c: Claim) =>
    c.used_at ? t("enrol.used", { device: c.device ?? "" }) : c.expires_at * 1000 < Date.now() ? t("enrol.expired") : t("enrol.open");

  return (
    <>
      <PageTitle>{t("enrol.title")}</PageTitle>
      <Space direction="vertical" size={16} style={{ width: "100%" }}>
        <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("enrol.mint")}</h2>}>
          <ErrorAlert error={error} />
          <Typography.Paragraph type="secondary">{t("enrol.mintHelp")}</Typography.Paragraph>
          <Form layout="inline" onFinish={mint} initialValues={{ expires: 86400 }}>
            <Form.Item name="expires" label={t("enrol.expiresIn")}>
              <Select style={{ width: 140 }} options={EXPIRY_OPTIONS.map((s) => ({ value: s, label: t(`enrol.expiry.${s}`) }))} />
            </Form.Item>
            <Form.Item name="device" label={t("enrol.forDevice")} rules={[{ pattern: /^[a-z0-9][a-z0-9_-]*$/, message: t("enrol.deviceRule") }]}>
              <Input placeholder={t("enrol.anyDevice")} style={{ width: 200 }} />
            </Form.Item>
            <Button type="primary" htmlType="submit" loading={busy}>
              {t("enrol.mintButton")}
            </Button>
          </Form>
        </Card>
        <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("enrol.claims")}</h2>}>
          <ErrorAlert error={claimsError} />
          <Table<Claim>
            rowKey="claim_id"
            size="small"
            dataSource={claims}
            pagination={{ pageSize: 20, hideOnSinglePage: true }}
            locale={{ emptyText: t("enrol.noClaims") }}
            columns={[
              { title: t("enrol.claimId"), dataIndex: "claim_id", render: (x: string) => <code>{x}</code> },
              { title: t("enrol.createdAt"), dataIndex: "created_at", render: (s: number) => formatTime(s) },
              { title: t("enrol.expiresAt"), dataIndex: "expires_at", render: (s: number) => formatTime(s) },
              { title: t("enrol.forDevice"), dataIndex: "for_device", render: (x: string | null) => x ?? t("enrol.anyDevice") },
              { title: t("enrol.status"), key: "state", render: (_, c) => <Tag>{claimState(c)}</Tag> },
              {
                title: t("common.actions"),
                key: "actions",
                render: (_, c) =>
                  !c.used_at && (
                    <Popconfirm title={t("enrol.revokeClaimConfirm")} onConfirm={() => revokeClaim(c)} okText={t("enrol.revokeClaim")} cancelText={t("common.cancel")}>
                      <Button size="small" danger icon={<DeleteOutlined />} aria-label={t("enrol.revokeClaimLabel", { id: c.claim_id })} />
                    </Popconfirm>
                  ),
              },
            ]}
          />
        </Card>
        <Card size="small" title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("enrol.enrolled")}</h2>}>
          <Table<EnrolledDevice>
            rowKey="device"
            size="small"
            dataSource={enrolled}
            pagination={{ pageSize: 20, hideOnSinglePage: true }}
            locale={{ emptyText: t("fleet.empty") }}
            columns={[
              { title: t("fleet.device"), dataIndex: "device" },
              { title: t("enrol.name"), dataIndex: "name" },
              { title: t("fleet.area"), dataIndex: "area", render: (a: string | null) => a ?? "—" },
              { title: t("enrol.enrolledAt"), dataIndex: "enrolled_at", render: (s: number) => formatTime(s) },
              { title: t("enrol.status"), dataIndex: "revoked", render: (r: boolean) => <Tag>{r ? t("enrol.revoked") : t("enrol.active")}</Tag> },
              {
                title: t("common.actions"),
                key: "actions",
                render: (_, d) =>
                  !d.revoked && (
                    <Can action="devices.revoke">
                      <Popconfirm title={t("device.revokeConfirm", { device: d.device })} onConfirm={() => revokeDevice(d.device)} okText={t("device.revoke")} cancelText={t("common.cancel")}>
                        <Button size="small" danger icon={<DeleteOutlined />} aria-label={t("device.revokeLabel", { device: d.device })} />
                      </Popconfirm>
                    </Can>
                  ),
              },
            ]}
          />
        </Card>
      </Space>
      <Modal
        open={minted !== null}
        destroyOnHidden // the token leaves the page with the dialog
        title={t("enrol.mintedTitle")}
        onCancel={() => setMinted(null)}
        footer={<Button onClick={() => setMinted(null)}>{t("common.close")}</Button>}
        width={640}
      >
        {minted && (
          <Space direction="vertical" style={{ width: "100%" }}>
            <Alert type="warning" showIcon message={t("enrol.shownOnce")} />
            <Typography.Text strong>{t("enrol.token")}</Typography.Text>
            <CopyField label={t("enrol.token")} value={minted.token} />
            <Typography.Text strong>{t("enrol.command")}</Typography.Text>
            <CopyField label={t("enrol.command")} value={enrollCommand(minted, window.location.origin)} />
            <Typography.Text type="secondary">{t("enrol.expiresAtText", { at: formatTime(minted.expires_at) })}</Typography.Text>
          </Space>
        )}
      </Modal>
    </>
  );
}
