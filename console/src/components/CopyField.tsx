import { CopyOutlined } from "@ant-design/icons";
import { Button, Input, Space, message } from "antd";
import { useTranslation } from "react-i18next";

/** A read-only value with a labelled copy button. */
export function CopyField({ label, value }: { label: string; value: string }) {
  const { t } = useTranslation();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      void message.success(t("common.copied"));
    } catch {
      void message.error(t("common.copyFailed"));
    }
  };
  return (
    <Space.Compact style={{ width: "100%" }}>
      <Input readOnly value={value} aria-label={label} style={{ fontFamily: "monospace" }} />
      <Button icon={<CopyOutlined />} onClick={copy} aria-label={t("common.copyLabel", { what: label })}>
        {t("common.copy")}
      </Button>
    </Space.Compact>
  );
}
