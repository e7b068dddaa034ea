import { Form, Input, Modal, Typography } from "antd";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/client";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "./ErrorAlert";

interface Values {
  current: string;
  password: string;
}

/** Change one's password: the hub then signs every session out, this one included. */
export function PasswordDialog({ onClose }: { onClose: (changed: boolean) => void }) {
  const { t } = useTranslation();
  const { client } = useAuth();
  const [form] = Form.useForm<Values>();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (values: Values) => {
    setBusy(true);
    setError(null);
    try {
      await client.post("/api/auth/password", { current_password: values.current, new_password: values.password });
      onClose(true);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      open
      destroyOnHidden
      title={t("password.changeTitle")}
      okText={t("password.change")}
      cancelText={t("common.cancel")}
      onOk={() => form.submit()}
      onCancel={() => onClose(false)}
      confirmLoading={busy}
    >
      <Typography.Paragraph>{t("password.signsOutEverywhere")}</Typography.Paragraph>
      <ErrorAlert error={error} />
      <Form form={form} layout="vertical" requiredMark={false} onFinish={submit}>
        <Form.Item name="current" label={t("password.current")} rules={[{ required: true, message: t("password.required") }]}>
          <Input.Password autoComplete="current-password" />
        </Form.Item>
        <Form.Item name="password" label={t("password.new")} rules={[{ required: true, message: t("password.required") }]}>
          <Input.Password autoComplete="new-password" />
        </Form.Item>
      </Form>
    </Modal>
  );
}
