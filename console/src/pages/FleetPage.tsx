import { Select, Space, Table, Tag, Typography } from "antd";
import type { ColumnsType } from "antd/es/table";
import { useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router-dom";

import { DEVICE_STATES } from "../api/types";
import type { DeviceState, DeviceView, TurnView } from "../api/types";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "../components/ErrorAlert";
import { PageTitle } from "../components/PageTitle";
import { StateTag } from "../components/StateTag";
import { formatTime } from "../format";
import { useLive } from "../live/LiveContext";

export function TurnSummary({ turn }: { turn: TurnView | null | undefined }) {
  const { t } = useTranslation();
  if (!turn) return <>—</>;
  return (
    <Space direction="vertical" size={0}>
      <Typography.Text>{turn.text ? `“${turn.text}”` : "—"}</Typography.Text>
      <Typography.Text type="secondary">
        {[turn.intent, turn.outcome && t(`outcome.${turn.outcome}`, { defaultValue: turn.outcome }),
          turn.latency_ms !== null ? t("fleet.latency", { ms: Math.round(turn.latency_ms) }) : null]
          .filter(Boolean)
          .join(" · ")}
      </Typography.Text>
    </Space>
  );
}

export function StreamTag() {
  const { t } = useTranslation();
  const { stream } = useLive();
  return (
    <Tag role="status" style={{ color: stream === "open" ? "#135200" : "#434343" }}>
      {t(`stream.${stream}`)}
    </Tag>
  );
}

export default function FleetPage() {
  const { t } = useTranslation();
  const { can } = useAuth();
  const { devices, fleetError, fleetLoading } = useLive();
  const [area, setArea] = useState<string | undefined>();
  const [state, setState] = useState<DeviceState | undefined>();
  const all = useMemo(() => Object.values(devices).sort((a, b) => a.device.localeCompare(b.device)), [devices]);
  const areas = useMemo(() => [...new Set(all.map((d) => d.area).filter((a): a is string => !!a))].sort(), [all]);
  const shown = all.filter((d) => (!area || d.area === area) && (!state || d.state === state));

  const columns: ColumnsType<DeviceView> = [
    {
      title: t("fleet.device"),
      key: "device",
      render: (_, d) => (
        <Space direction="vertical" size={0}>
          <Link to={`/fleet/${encodeURIComponent(d.device)}`}>{d.name || d.device}</Link>
          {d.name && <Typography.Text type="secondary">{d.device}</Typography.Text>}
        </Space>
      ),
    },
    { title: t("fleet.area"), dataIndex: "area", render: (a: string | null) => a ?? "—" },
    {
      title: t("fleet.state"),
      key: "state",
      render: (_, d) => (
        <Space wrap>
          <StateTag state={d.state} />
          {!d.enrolled && <Tag>{t("fleet.notEnrolled")}</Tag>}
        </Space>
      ),
    },
    { title: t("fleet.lastSeen"), dataIndex: "last_seen", render: (s: number | null) => formatTime(s) },
    ...(can("turns.read")
      ? [{ title: t("fleet.lastTurn"), key: "turn", render: (_: unknown, d: DeviceView) => <TurnSummary turn={d.last_turn} /> }]
      : []),
    {
      title: t("fleet.versions"),
      key: "versions",
      render: (_, d) =>
        Object.entries(d.versions ?? {})
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "—",
    },
    { title: t("fleet.configRevision"), dataIndex: "config_revision", render: (r: number | null) => r ?? "—" },
  ];

  return (
    <>
      <PageTitle extra={<StreamTag />}>{t("fleet.title")}</PageTitle>
      <ErrorAlert error={fleetError} />
      <Space style={{ marginBottom: 16 }} wrap>
        <Select
          allowClear
          aria-label={t("fleet.filterArea")}
          placeholder={t("fleet.allAreas")}
          value={area}
          onChange={setArea}
          style={{ width: 180 }}
          options={areas.map((a) => ({ value: a, label: a }))}
        />
        <Select
          allowClear
          aria-label={t("fleet.filterState")}
          placeholder={t("fleet.allStates")}
          value={state}
          onChange={setState}
          style={{ width: 180 }}
          options={DEVICE_STATES.map((s) => ({ value: s, label: t(`state.${s}`) }))}
        />
        <Typography.Text role="status">{t("fleet.count", { shown: shown.length, total: all.length })}</Typography.Text>
      </Space>
      <Table<DeviceView>
        rowKey="device"
        loading={fleetLoading}
        columns={columns}
        dataSource={shown}
        pagination={{ pageSize: 50, hideOnSinglePage: true }}
        locale={{ emptyText: t("fleet.empty") }}
        scroll={{ x: true }}
      />
    </>
  );
}
