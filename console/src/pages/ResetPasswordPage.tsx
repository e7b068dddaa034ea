import { Alert, Spin } from "antd";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useSearchParams } from "react-router-dom";

import type { ApiError } from "../api/client";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "../components/ErrorAlert";
import { AuthCard } from "./AuthCard";
import { NewPasswordForm } from "./NewPasswordForm";

const CONFIRM = "/api/auth/password-reset/confirm";

export default function ResetPasswordPage() {
  const { t } = useTranslation();
  const { client } = useAuth();
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const [checking, setChecking] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const [invalid, setInvalid] = useState(false);

  useEffect(() => {
    client
      .request("GET", CONFIRM, { query: { token }, auth: false })
      .catch((e: ApiError) => {
        setError(e);
        setInvalid(true);
      })
      .finally(() => setChecking(false));
  }, [client, token]);

  const submit = async (password: string) => {
    setBusy(true);
    setError(null);
    try {
      await client.request("POST", CONFIRM, { body: { token, new_password: password }, auth: false });
      setDone(true);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={t("reset.title")}>
      {checking && <Spin />}
      <ErrorAlert error={error} />
      {done ? (
        <>
          <Alert type="success" showIcon role="status" message={t("reset.done")} style={{ marginBottom: 16 }} />
          <Link to="/login">{t("login.backToLogin")}</Link>
        </>
      ) : (
        !checking &&
        !invalid && (
          <NewPasswordForm busy={busy} submitLabel={t("reset.submit")} onSubmit={submit} />
        )
      )}
    </AuthCard>
  );
}
