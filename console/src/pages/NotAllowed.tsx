import { Result } from "antd";
import { useTranslation } from "react-i18next";

export function NotAllowed() {
  const { t } = useTranslation();
  return <Result status="403" title={<h1 style={{ fontSize: 24 }}>{t("notAllowed.title")}</h1>} subTitle={t("notAllowed.text")} />;
}
