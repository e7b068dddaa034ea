import { Alert, Button, Descriptions, Spin, Typography } from "antd";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useSearchParams } from "react-router-dom";

import type { ApiError } from "../api/client";
import type { InvitationCheck } from "../api/types";
import { useAuth } from "../auth/AuthContext";
import { ErrorAlert } from "../components/ErrorAlert";
import { AuthCard } from "./AuthCard";
import { NewPasswordForm } from "./NewPasswordForm";

const INVITATION = "/api/auth/invitation";

type Check = InvitationCheck & { accept_with?: string };

export default function InvitationPage() {
  const { t } = useTranslation();
  const { client, status, me, reload, login, setTenant } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const [check, setCheck] = useState<Check | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    client
      .request<Check>("GET", INVITATION, { query: { token }, auth: false })
      .then(setCheck)
      .catch((e: ApiError) => setError(e));
  }, [client, token]);

  const enter = async (tenant: string) => {
    setTenant(tenant);
    navigate("/", { replace: true });
  };

  const accept = async (password: string) => {
    if (!check) return;
    setBusy(true);
    setError(null);
    try {
      await client.request("POST", INVITATION, { body: { token, new_password: password }, auth: false });
      await login(check.email, password);
      await enter(check.tenant_id);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  const join = async () => {
    if (!check) return;
    setBusy(true);
    setError(null);
    try {
      await client.post(`${INVITATION}/join`, { token });
      await reload();
      await enter(check.tenant_id);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  };

  // An address with an account accepts signed in; the API says which case this is.
  const hasAccount = check?.accept_with?.includes("/join") ?? false;
  const signedInAsInvitee = status === "signedIn" && me?.email === check?.email;
  const next = encodeURIComponent(`/invitation?token=${encodeURIComponent(token)}`);

  return (
    <AuthCard title={t("invitation.title")}>
      <ErrorAlert error={error} />
      {!check && !error && <Spin />}
      {check && (
        <>
          <Descriptions column={1} size="small" style={{ marginBottom: 16 }}>
            <Descriptions.Item label={t("invitation.tenant")}>{check.tenant_id}</Descriptions.Item>
            <Descriptions.Item label={t("invitation.role")}>{t(`roles.${check.role}`)}</Descriptions.Item>
            <Descriptions.Item label={t("invitation.email")}>{check.email}</Descriptions.Item>
          </Descriptions>
          {signedInAsInvitee ? (
            <Button type="primary" block loading={busy} onClick={join}>
              {t("invitation.join")}
            </Button>
          ) : hasAccount ? (
            <>
              <Alert type="info" showIcon message={t("invitation.signInFirst", { email: check.email })} />
              <Typography.Paragraph style={{ marginTop: 16 }}>
                <Link to={`/login?next=${next}`}>{t("invitation.signIn")}</Link>
              </Typography.Paragraph>
            </>
          ) : (
            <>
              <Typography.Paragraph>{t("invitation.choosePassword")}</Typography.Paragraph>
              <NewPasswordForm busy={busy} submitLabel={t("invitation.accept")} onSubmit={accept} />
            </>
          )}
        </>
      )}
    </AuthCard>
  );
}
