import { Alert } from "antd";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";

/** The API's error, translated when its code is known, else its own message. */
export function useErrorText(): (error: ApiError) => string {
  const { t } = useTranslation();
  return (error) => t(`errors.${error.code}`, { defaultValue: error.message });
}

export function ErrorAlert({ error }: { error: ApiError | null | undefined }) {
  const text = useErrorText();
  if (!error) return null;
  return <Alert type="error" showIcon role="alert" message={text(error)} style={{ marginBottom: 16 }} />;
}
