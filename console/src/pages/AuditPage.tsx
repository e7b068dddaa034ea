import { DownloadOutlined } from "@ant-design/icons";
import { App, Button, DatePicker, Form, Input, Select, Space, Table } from "antd";
import type { Dayjs } from "dayjs";
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError, Query } from "../api/client";
import type { AuditEntry, AuditPage as Page } from "../api/types";
import { useAuth, useTenantPath } from "../auth/AuthContext";
import { ErrorAlert, useErrorText } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { formatTime } from "../format";

const PAGE_SIZE = 50;
const OUTCOMES = ["ok", "denied", "error"];

interface Filters {
  actor?: string;
  action?: string;
  outcome?: string;
  range?: [Dayjs | null, Dayjs | null] | null;
}

function toQuery(f: Filters): Query {
  return {
    actor: f.actor?.trim(),
    action: f.action?.trim(),
    outcome: f.outcome,
    since: f.range?.[0] ? f.range[0].valueOf() / 1000 : undefined,
    until: f.range?.[1] ? f.range[1].valueOf() / 1000 : undefined,
  };
}

export default function AuditPage() {
  const { t } = useTranslation();
  const { client, tenant } = useAuth();
  const base = useTenantPath();
  const { message } = App.useApp();
  const errorText = useErrorText();
  const [filters, setFilters] = useState<Query>({});
  // The cursors of the pages seen so far: [undefined (newest), before_id of page 2, ...].
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const [page, setPage] = useState<Page>({ entries: [], next: null });
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(false);
  const cursor = cursors[cursors.length - 1];

  const load = useCallback(() => {
    setLoading(true);
    client
      .get<Page>(`${base}/audit`, { ...filters, limit: PAGE_SIZE, before_id: cursor })
      .then((p) => {
        setPage(p);
        setError(null);
      })
      .catch((e: ApiError) => setError(e))
      .finally(() => setLoading(false));
  }, [client, base, filters, cursor]);
  useEffect(load, [load]);

  const exportJsonl = async () => {
    try {
      const text = await client.get<string>(`${base}/audit.jsonl`, filters);
      const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `audit-${tenant ?? "tenant"}.jsonl`;
      a.click();
      URL.revokeObjectURL(url);
    } catch (e) {
      void message.error(errorText(e as ApiError));
    }
  };

  return (
    <>
      <PageTitle
        extra={
          <Button icon={<DownloadOutlined />} onClick={() => void exportJsonl()}>
            {t("audit.export")}
          </Button>
        }
      >
        {t("audit.title")}
      </PageTitle>
      <Form<Filters>
        layout="inline"
        style={{ marginBottom: 16, rowGap: 8 }}
        onFinish={(f) => {
          setFilters(toQuery(f));
          setCursors([undefined]);
        }}
      >
        <Form.Item name="actor" label={t("audit.actor")}>
          <Input allowClear style={{ width: 200 }} />
        </Form.Item>
        <Form.Item name="action" label={t("audit.action")}>
          <Input allowClear style={{ width: 160 }} />
        </Form.Item>
        <Form.Item name="outcome" label={t("audit.outcome")}>
          <Select allowClear style={{ width: 130 }} options={OUTCOMES.map((o) => ({ value: o, label: t(`audit.outcomes.${o}`) }))} />
        </Form.Item>
        <Form.Item name="range" label={t("audit.period")}>
          <DatePicker.RangePicker showTime allowEmpty={[true, true]} />
        </Form.Item>
        <Button type="primary" htmlType="submit">
          {t("audit.apply")}
        </Button>
      </Form>
      <ErrorAlert error={error} />
      <Table<AuditEntry>
        rowKey="id"
        size="small"
        loading={loading}
        dataSource={page.entries}
        pagination={false}
        locale={{ emptyText: t("audit.empty") }}
        scroll={{ x: true }}
        columns={[
          { title: t("audit.at"), dataIndex: "at", render: (s: number) => formatTime(s) },
          { title: t("audit.actor"), dataIndex: "actor" },
          { title: t("audit.action"), dataIndex: "action" },
          { title: t("audit.target"), dataIndex: "target" },
          { title: t("audit.outcome"), dataIndex: "outcome", render: (o: string) => t(`audit.outcomes.${o}`, { defaultValue: o }) },
          { title: t("audit.status"), dataIndex: "status" },
          { title: t("audit.ip"), dataIndex: "ip" },
        ]}
      />
      <Space style={{ marginTop: 16 }}>
        <Button disabled={cursors.length === 1} onClick={() => setCursors([undefined])}>
          {t("audit.newest")}
        </Button>
        <Button disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          {t("audit.newer")}
        </Button>
        <Button disabled={page.next === null} onClick={() => page.next !== null && setCursors((c) => [...c, page.next ?? undefined])}>
          {t("audit.older")}
        </Button>
      </Space>
    </>
  );
}
