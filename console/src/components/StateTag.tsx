import {
  CheckCircleOutlined,
  CloseCircleOutlined,
  ExclamationCircleOutlined,
  MinusCircleOutlined,
} from "@ant-design/icons";
import { Tag } from "antd";
import { useTranslation } from "react-i18next";

import type { DeviceState } from "../api/types";

// Text and icon carry the state; the colours (dark enough for AA contrast) only repeat it.
const LOOK: Record<DeviceState, { color: string; background: string; icon: JSX.Element }> = {
  online: { color: "#135200", background: "#f6ffed", icon: <CheckCircleOutlined /> },
  offline: { color: "#434343", background: "#f5f5f5", icon: <MinusCircleOutlined /> },
  error: { color: "#a8071a", background: "#fff1f0", icon: <CloseCircleOutlined /> },
  never_seen: { color: "#614700", background: "#fffbe6", icon: <ExclamationCircleOutlined /> },
};

export function StateTag({ state }: { state: DeviceState }) {
  const { t } = useTranslation();
  const look = LOOK[state];
  return (
    <Tag icon={look.icon} style={{ color: look.color, background: look.background, borderColor: look.color }}>
      {t(`state.${state}`)}
    </Tag>
  );
}
