import { Spin } from "antd";
import { Suspense, lazy } from "react";
import type { ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";

import { useAuth } from "./auth/AuthContext";
import type { Action } from "./auth/permissions";
import { AppLayout, NAV } from "./components/AppLayout";
import { LiveProvider } from "./live/LiveContext";
import { LoginPage } from "./pages/LoginPage";
import { NotAllowed } from "./pages/NotAllowed";

// Every page but sign-in loads on demand (the device page's charts load with it alone).
const FleetPage = lazy(() => import("./pages/FleetPage"));
const InvitationPage = lazy(() => import("./pages/InvitationPage"));
const ResetPasswordPage = lazy(() => import("./pages/ResetPasswordPage"));
const DevicePage = lazy(() => import("./pages/DevicePage"));
const VoiceConfigPage = lazy(() => import("./pages/VoiceConfigPage"));
const EnrolmentPage = lazy(() => import("./pages/EnrolmentPage"));
const UsersPage = lazy(() => import("./pages/UsersPage"));
const TenantsPage = lazy(() => import("./pages/TenantsPage"));
const McpServersPage = lazy(() => import("./pages/McpServersPage"));
const AuditPage = lazy(() => import("./pages/AuditPage"));
const AlertsPage = lazy(() => import("./pages/AlertsPage"));

function Loading() {
  return <Spin style={{ display: "block", margin: "64px auto" }} />;
}

function RequireSignIn({ children }: { children: ReactNode }) {
  const { status } = useAuth();
  const location = useLocation();
  if (status === "loading") return <Loading />;
  if (status === "signedOut") {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  return <>{children}</>;
}

function Gate({ action, platform, children }: { action?: Action; platform?: boolean; children: ReactNode }) {
  const { can, canPlatform } = useAuth();
  const allowed = platform ? canPlatform("tenants.create") : action ? can(action) : true;
  return allowed ? <Suspense fallback={<Loading />}>{children}</Suspense> : <NotAllowed />;
}

function Home() {
  const { can, canPlatform } = useAuth();
  const first = NAV.find((n) => (n.platform ? canPlatform("tenants.create") : n.action ? can(n.action) : true));
  return first ? <Navigate to={first.path} replace /> : <NotAllowed />;
}

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route path="/reset-password" element={<Suspense fallback={<Loading />}><ResetPasswordPage /></Suspense>} />
      <Route path="/invitation" element={<Suspense fallback={<Loading />}><InvitationPage /></Suspense>} />
      <Route
        element={
          <RequireSignIn>
            <LiveProvider>
              <AppLayout />
            </LiveProvider>
          </RequireSignIn>
        }
      >
        <Route index element={<Home />} />
        <Route path="/fleet" element={<Gate action="devices.read"><FleetPage /></Gate>} />
        <Route path="/fleet/:device" element={<Gate action="devices.read"><DevicePage /></Gate>} />
        <Route path="/voice" element={<Gate action="voice.read"><VoiceConfigPage /></Gate>} />
        <Route path="/enrolment" element={<Gate action="devices.claim"><EnrolmentPage /></Gate>} />
        <Route path="/users" element={<Gate action="users.read"><UsersPage /></Gate>} />
        <Route path="/tenants" element={<Gate platform><TenantsPage /></Gate>} />
        <Route path="/mcp" element={<Gate action="mcp.read"><McpServersPage /></Gate>} />
        <Route path="/audit" element={<Gate action="audit.read"><AuditPage /></Gate>} />
        <Route path="/alerts" element={<Gate action="alerts.read"><AlertsPage /></Gate>} />
        <Route path="*" element={<Home />} />
      </Route>
    </Routes>
  );
}
