import "./i18n";
import "./index.css";

import { App as AntApp, ConfigProvider } from "antd";
import enUS from "antd/locale/en_US";
import trTR from "antd/locale/tr_TR";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { useTranslation } from "react-i18next";
import { BrowserRouter } from "react-router-dom";

import { App } from "./App";
import { AuthProvider } from "./auth/AuthContext";

// Darker than Ant Design's defaults where its text would miss WCAG AA contrast.
const theme = {
  token: {
    colorPrimary: "#0958d9",
    colorInfo: "#0958d9",
    colorLink: "#0958d9",
    colorPrimaryHover: "#003eb3",
    colorLinkHover: "#003eb3",
    colorTextDescription: "rgba(0, 0, 0, 0.65)",
    colorTextTertiary: "rgba(0, 0, 0, 0.62)",
    colorTextQuaternary: "rgba(0, 0, 0, 0.6)",
    colorError: "#cf1322",
  },
};

function Root() {
  const { i18n } = useTranslation();
  return (
    <ConfigProvider locale={i18n.language === "tr" ? trTR : enUS} theme={theme}>
      <AntApp>
        <BrowserRouter>
          <AuthProvider>
            <App />
          </AuthProvider>
        </BrowserRouter>
      </AntApp>
    </ConfigProvider>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
