import { Typography } from "antd";
import { useEffect } from "react";
import type { ReactNode } from "react";

/** The page's one h1, also the document title. */
export function PageTitle({ children, extra }: { children: string; extra?: ReactNode }) {
  useEffect(() => {
    document.title = `${children} · Konak`;
  }, [children]);
  return (
    <div style={{ display: "flex", alignItems: "center", gap: 16, marginBottom: 16, flexWrap: "wrap" }}>
      <Typography.Title level={1} style={{ margin: 0, fontSize: 24 }}>
        {children}
      </Typography.Title>
      <div style={{ marginLeft: "auto" }}>{extra}</div>
    </div>
  );
}
