import { Button, Form, Input } from "antd";
import { useTranslation } from "react-i18next";

/** A new password typed twice. */
export function NewPasswordForm({
  busy,
  submitLabel,
  onSubmit,
}: {
  busy: boolean;
  submitLabel: string;
  onSubmit: (password: string) => void;
}) {
  const { t } = useTranslation();
  return (
    <Form layout="vertical" requiredMark={false} onFinish={(v: { password: string }) => onSubmit(v.password)}>
      <Form.Item
        name="password"
        label={t("password.new")}
        rules={[{ required: true, message: t("password.required") }]}
      >
        <Input.Password autoComplete="new-password" />
      </Form.Item>
      <Form.Item
        name="confirm"
        label={t("password.confirm")}
        dependencies={["password"]}
        rules={[
          { required: true, message: t("password.required") },
          ({ getFieldValue }) => ({
            validator: (_, value) =>
              !value || getFieldValue("password") === value
                ? Promise.resolve()
                : Promise.reject(new Error(t("password.mismatch"))),
          }),
        ]}
      >
        <Input.Password autoComplete="new-password" />
      </Form.Item>
      <Button type="primary" htmlType="submit" loading={busy} block>
        {submitLabel}
      </Button>
    </Form>
  );
}
