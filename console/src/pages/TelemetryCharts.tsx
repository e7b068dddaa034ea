// The device's telemetry over time (recharts; loaded only with the device page).
import { Card, Col, Row } from "antd";
import { useTranslation } from "react-i18next";
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import type { TelemetrySample } from "../api/types";

const COLOURS = ["#0958d9", "#c41d7f", "#d46b08", "#389e0d", "#531dab", "#08979c"];

function clock(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString();
}

function Chart({ title, data, lines, unit }: { title: string; data: object[]; lines: string[]; unit: string }) {
  return (
    <Card size="small" title={title}>
      <figure aria-label={title} style={{ margin: 0, height: 200 }}>
        <ResponsiveContainer width="100%" height="100%">
          <LineChart data={data} margin={{ top: 8, right: 16, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="t" tickFormatter={clock} minTickGap={40} />
            <YAxis unit={unit} width={70} />
            <Tooltip labelFormatter={(v) => clock(Number(v))} />
            {lines.length > 1 && <Legend />}
            {lines.map((key, i) => (
              <Line
                key={key}
                type="monotone"
                dataKey={key}
                stroke={COLOURS[i % COLOURS.length]}
                strokeDasharray={i % 2 ? "5 3" : undefined}
                dot={false}
                isAnimationActive={false}
                connectNulls
              />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </figure>
    </Card>
  );
}

export default function TelemetryCharts({ samples }: { samples: TelemetrySample[] }) {
  const { t } = useTranslation();
  const stages = [...new Set(samples.flatMap((s) => Object.keys(s.stage_latency_ms ?? {})))].sort();
  const data = samples.map((s) => ({
    t: s.received_at,
    [t("device.cpu")]: s.cpu_percent,
    [t("device.rss")]: s.rss_bytes === null ? null : Math.round((s.rss_bytes / 1048576) * 10) / 10,
    [t("device.temperature")]: s.temperature_celsius,
    ...Object.fromEntries(stages.map((st) => [st, s.stage_latency_ms?.[st] ?? null])),
  }));
  return (
    <Row gutter={[16, 16]}>
      <Col xs={24} lg={12}>
        <Chart title={t("device.cpu")} data={data} lines={[t("device.cpu")]} unit=" %" />
      </Col>
      <Col xs={24} lg={12}>
        <Chart title={t("device.rss")} data={data} lines={[t("device.rss")]} unit=" MiB" />
      </Col>
      <Col xs={24} lg={12}>
        <Chart title={t("device.temperature")} data={data} lines={[t("device.temperature")]} unit=" °C" />
      </Col>
      <Col xs={24} lg={12}>
        <Chart title={t("device.stageLatency")} data={data} lines={stages} unit=" ms" />
      </Col>
    </Row>
  );
}
