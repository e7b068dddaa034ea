// Between the API's VoiceConfig and the voice config form, and the API's field errors.
import type { FieldProblem } from "../api/client";
import type { VoiceConfig, WakeWord } from "../api/types";

export interface VoiceForm {
  language: string;
  sentences: { intent: string; templates: string }[];
  slots: { name: string; values: string }[];
  wake: WakeWord[];
}

const lines = (text: string | undefined): string[] =>
  (text ?? "").split("\n").map((l) => l.trim()).filter(Boolean);

export function toForm(config: VoiceConfig): VoiceForm {
  return {
    language: config.language,
    sentences: Object.entries(config.sentences).map(([intent, t]) => ({ intent, templates: t.join("\n") })),
    slots: Object.entries(config.slot_lists).map(([name, v]) => ({ name, values: v.join("\n") })),
    wake: config.wake_words.map((w) => ({ ...w })),
  };
}

export function fromForm(form: VoiceForm) {
  return {
    language: form.language,
    sentences: Object.fromEntries((form.sentences ?? []).map((s) => [s.intent.trim(), lines(s.templates)])),
    slot_lists: Object.fromEntries((form.slots ?? []).map((s) => [s.name.trim(), lines(s.values)])),
    wake_words: (form.wake ?? []).map((w) => ({ model: w.model.trim(), threshold: Number(w.threshold) })),
  };
}

export interface FieldError {
  name: (string | number)[];
  errors: string[];
}

/** Where each API problem belongs in the form: `sentences.X[2]` (or pydantic's
 * `sentences.X.2`) is line 3 of intent X's templates, and so on. */
export function placeErrors(form: VoiceForm, details: FieldProblem[], lineLabel: (n: number) => string): FieldError[] {
  const placed = new Map<string, FieldError>();
  const add = (name: (string | number)[], message: string) => {
    const key = JSON.stringify(name);
    const entry = placed.get(key) ?? { name, errors: [] };
    entry.errors.push(message);
    placed.set(key, entry);
  };
  for (const { path, message } of details) {
    let m = /^(sentences|slot_lists)\.(.+?)(?:\[(\d+)\]|\.(\d+))?$/.exec(path);
    if (m) {
      const [, group, key, a, b] = m;
      const index = a ?? b;
      const text = index !== undefined ? `${lineLabel(Number(index) + 1)}: ${message}` : message;
      if (group === "sentences") {
        const k = form.sentences.findIndex((s) => s.intent.trim() === key);
        if (k >= 0) add(["sentences", k, "templates"], text);
        else add(["language"], `${key}: ${text}`);
      } else {
        const k = form.slots.findIndex((s) => s.name.trim() === key);
        if (k >= 0) add(["slots", k, "values"], text);
        else add(["language"], `${key}: ${text}`);
      }
      continue;
    }
    m = /^wake_words(?:\[(\d+)\]|\.(\d+))(?:\.(model|threshold))?$/.exec(path);
    if (m) {
      add(["wake", Number(m[1] ?? m[2]), m[3] ?? "threshold"], message);
      continue;
    }
    if (path === "language") add(["language"], message);
  }
  return [...placed.values()];
}
