/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The hub the dev server and `vite preview` send /api to (the console itself only ever
// talks to its own origin; the hub serves the built files in production).
const hub = process.env.KONAK_HUB_URL ?? "http://127.0.0.1:8380";
const proxy = { "/api": { target: hub, changeOrigin: false } };

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../konak/hub/console_dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
        },
      },
    },
  },
  server: { proxy },
  preview: { proxy },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test-setup.ts"],
    testTimeout: 30000,
  },
});
