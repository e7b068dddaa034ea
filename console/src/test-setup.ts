import "@testing-library/jest-dom/vitest";
import { configure } from "@testing-library/react";
import { vi } from "vitest";

// Ant Design asks for these; jsdom has neither.
Object.defineProperty(window, "matchMedia", {
  writable: true,
  value: (query: string) => ({
    matches: false,
    media: query,
    onchange: null,
    addListener: vi.fn(),
    removeListener: vi.fn(),
    addEventListener: vi.fn(),
    removeEventListener: vi.fn(),
    dispatchEvent: vi.fn(),
  }),
});
window.ResizeObserver ??= class {
  observe() {}
  unobserve() {}
  disconnect() {}
};
// The live stream is not opened in unit tests.
vi.mock("./api/events", () => ({ openEventStream: () => () => undefined }));

// jsdom implements getComputedStyle without pseudo-elements (Ant Design asks for them).
const computed = window.getComputedStyle.bind(window);
window.getComputedStyle = (element: Element) => computed(element);

// Role queries over Ant Design's DOM are slow on a shared machine.
configure({ asyncUtilTimeout: 5000 });
