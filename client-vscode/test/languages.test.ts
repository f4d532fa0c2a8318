import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isGloballyEnabled, isLanguageEnabled, toggleGlobal, toggleTarget } from "../src/pure/languages";

describe("wren.enable", () => {
  it("a language's own entry wins over *", () => {
    const map = { "*": true, markdown: false };
    assert.equal(isLanguageEnabled(map, "python"), true);
    assert.equal(isLanguageEnabled(map, "markdown"), false);
    assert.equal(isLanguageEnabled({ "*": false, python: true }, "python"), true);
    assert.equal(isLanguageEnabled({ "*": false, python: true }, "go"), false);
  });

  it("missing or malformed means enabled", () => {
    assert.equal(isLanguageEnabled(undefined, "python"), true);
    assert.equal(isLanguageEnabled({}, "python"), true);
    assert.equal(isLanguageEnabled({ python: "no" }, "python"), true);
    assert.equal(isGloballyEnabled({ "*": "off" }), true);
  });

  it("does not treat prototype names as languages", () => {
    assert.equal(isLanguageEnabled({ "*": true }, "constructor"), true);
    assert.equal(isLanguageEnabled({ "*": false }, "toString"), false);
  });

  it("toggling flips * and keeps per-language entries", () => {
    assert.deepEqual(toggleGlobal({ "*": true, markdown: false }), { "*": false, markdown: false });
    assert.deepEqual(toggleGlobal({ markdown: false }), { "*": false, markdown: false });
    assert.deepEqual(toggleGlobal(undefined, { "*": false }), { "*": true });
  });

  it("writes where the value is set", () => {
    assert.equal(toggleTarget(undefined), "global");
    assert.equal(toggleTarget({ workspaceValue: { "*": true } }), "workspace");
    assert.equal(toggleTarget({ workspaceValue: {}, workspaceFolderValue: { "*": true } }), "workspaceFolder");
  });
});
