import { Alert, Typography } from "antd";
import { useTranslation } from "react-i18next";

export function NotAllowed() {
  const { t } = useTranslation();
  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 24 }}>
        {t("notAllowed.title")}
      </Typography.Title>
      <Alert type="info" showIcon message={t("notAllowed.text")} />
    </>
  );
}
