import { Button, Form, Input, Typography } from "antd";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Navigate, useNavigate, useSearchParams } from "react-router-dom";

import type { ApiError } from "../api/client";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "../components/ErrorAlert";
import { AuthCard } from "./AuthCard";

/** Only a path of this console is followed after sign-in (never another origin). */
function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function LoginPage() {
  const { t } = useTranslation();
  const { login, status, client } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [forgot, setForgot] = useState(false);
  const [asked, setAsked] = useState(false);
  const next = safeNext(params.get("next"));

  if (status === "signedIn") return <Navigate to={next} replace />;

  const submit = async (values: { email: string; password: string }) => {
    setBusy(true);
    setError(null);
    try {
      await login(values.email, values.password);
      navigate(next, { replace: true });
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const askReset = async (values: { email: string }) => {
    setBusy(true);
    setError(null);
    try {
      await client.request("POST", "/api/auth/password-reset", { body: values, auth: false });
      setAsked(true);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  if (forgot) {
    return (
      <AuthCard title={t("login.forgotTitle")}>
        <ErrorAlert error={error} />
        {asked ? (
          <Typography.Paragraph role="status">{t("login.resetAsked")}</Typography.Paragraph>
        ) : (
          <Form layout="vertical" onFinish={askReset} requiredMark={false}>
            <Form.Item
              name="email"
              label={t("login.email")}
              rules={[{ required: true, type: "email", message: t("login.emailRequired") }]}
            >
              <Input autoComplete="email" />
            </Form.Item>
            <Button type="primary" htmlType="submit" loading={busy} block>
              {t("login.sendReset")}
            </Button>
          </Form>
        )}
        <Button type="link" onClick={() => setForgot(false)} style={{ paddingInline: 0, marginTop: 8 }}>
          {t("login.backToLogin")}
        </Button>
      </AuthCard>
    );
  }

  return (
    <AuthCard title={t("login.title")}>
      <ErrorAlert error={error} />
      <Form layout="vertical" onFinish={submit} requiredMark={false}>
        <Form.Item
          name="email"
          label={t("login.email")}
          rules={[{ required: true, type: "email", message: t("login.emailRequired") }]}
        >
          <Input autoComplete="username" />
        </Form.Item>
        <Form.Item
          name="password"
          label={t("login.password")}
          rules={[{ required: true, message: t("login.passwordRequired") }]}
        >
          <Input.Password autoComplete="current-password" />
        </Form.Item>
        <Button type="primary" htmlType="submit" loading={busy} block>
          {t("login.submit")}
        </Button>
      </Form>
      <Button type="link" onClick={() => setForgot(true)} style={{ paddingInline: 0, marginTop: 8 }}>
        {t("login.forgot")}
      </Button>
    </AuthCard>
  );
}
