import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import en from "./en.json";
import tr from "./tr.json";

type Tree = { [key: string]: string | Tree };

function keys(tree: Tree, prefix = ""): string[] {
  return Object.entries(tree).flatMap(([k, v]) => (typeof v === "string" ? [prefix + k] : keys(v, `${prefix}${k}.`)));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(name) && !/\.test\./.test(name) ? [path] : [];
  });
}

const base = (key: string) => key.replace(/_(one|other)$/, "");

describe("translations", () => {
  it("has the same keys in English and Turkish", () => {
    expect(keys(tr as Tree).sort()).toEqual(keys(en as Tree).sort());
  });

  it("has no empty string in either language", () => {
    for (const tree of [en, tr] as Tree[]) {
      const flat = keys(tree);
      for (const key of flat) {
        const value = key.split(".").reduce<string | Tree>((node, part) => (node as Tree)[part] as string | Tree, tree);
        expect(value, key).not.toBe("");
      }
    }
  });

  it("has every key the code asks for", () => {
    const known = new Set(keys(en as Tree).map(base));
    const srcDir = join(__dirname, "..");
    const missing: string[] = [];
    for (const file of sources(srcDir)) {
      const text = readFileSync(file, "utf8");
      for (const match of text.matchAll(/\bt\("([a-zA-Z]+\.[a-zA-Z0-9_.]+)"/g)) {
        const key = match[1] as string;
        if (!known.has(key)) missing.push(`${file}: ${key}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
