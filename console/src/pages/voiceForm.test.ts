import { describe, expect, it } from "vitest";

import { fromForm, placeErrors, toForm } from "./voiceForm";

const config = {
  revision: 2,
  language: "en",
  sentences: { HassTurnOn: ["turn on {name}", "switch on {name}"], Other: ["x"] },
  slot_lists: { name: ["lamp", "fan"] },
  wake_words: [{ model: "okay_nabu", threshold: 0.5 }],
  created_at: 1,
  created_by: "a",
  published_at: null,
};

describe("voice config form", () => {
  it("round-trips the API's config through the form, dropping blank lines", () => {
    const form = toForm(config);
    form.sentences[0]!.templates += "\n\n";
    expect(fromForm(form)).toEqual({
      language: "en",
      sentences: config.sentences,
      slot_lists: config.slot_lists,
      wake_words: config.wake_words,
    });
  });

  it("puts each API problem at its field, with the template's line", () => {
    const form = toForm(config);
    const placed = placeErrors(
      form,
      [
        { path: "sentences.HassTurnOn[1]", message: "unbalanced [" },
        { path: "sentences.Other.0", message: "unknown slot {room}" },
        { path: "slot_lists.name", message: "too many values" },
        { path: "wake_words[0].threshold", message: "must be below 1" },
      ],
      (n) => `line ${n}`,
    );
    expect(placed).toEqual([
      { name: ["sentences", 0, "templates"], errors: ["line 2: unbalanced ["] },
      { name: ["sentences", 1, "templates"], errors: ["line 1: unknown slot {room}"] },
      { name: ["slots", 0, "values"], errors: ["too many values"] },
      { name: ["wake", 0, "threshold"], errors: ["must be below 1"] },
    ]);
  });
});
