// Formatting shared by the pages (times are epoch seconds from the API).
import i18n from "./i18n";

export function formatTime(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toLocaleString(i18n.language);
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
