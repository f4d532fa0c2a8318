import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { becameReady, parseServerStatus, renderStatus, type StatusInputs } from "../src/pure/status";

const base: StatusInputs = { client: { kind: "running" }, globallyEnabled: true, languageEnabled: true, languageId: "python" };

describe("renderStatus", () => {
  it("starting", () => {
    const v = renderStatus({ ...base, client: { kind: "starting", interpreter: "/v/bin/python" } });
    assert.match(v.text, /loading~spin/);
    assert.match(v.tooltip, /\/v\/bin\/python/);
  });

  it("loading shows the progress percentage", () => {
    const v = renderStatus({ ...base, server: { state: "loading", model: "SmolLM2-135M", progress: 42.4 } });
    assert.equal(v.text, "$(loading~spin) Wren 42%");
    assert.match(v.tooltip, /SmolLM2-135M/);
    assert.equal(v.command, "wren.toggleCompletions");
  });

  it("ready names the model and device", () => {
    const v = renderStatus({ ...base, server: { state: "ready", model: "SmolLM2-135M", device: "cpu" } });
    assert.equal(v.text, "$(check) Wren");
    assert.match(v.tooltip, /SmolLM2-135M on cpu/);
    assert.equal(v.severity, "normal");
  });

  it("generating", () => {
    assert.match(renderStatus({ ...base, server: { state: "generating", model: "m" } }).text, /sync~spin/);
  });

  it("error: click shows the reason", () => {
    const v = renderStatus({ ...base, server: { state: "error", message: "Could not load /m: not a model folder." } });
    assert.equal(v.severity, "error");
    assert.equal(v.command, "wren.showStatus");
    assert.equal(v.errorMessage, "Could not load /m: not a model folder.");
  });

  it("client failure wins over everything", () => {
    const v = renderStatus({ ...base, client: { kind: "failed", message: "Wren is not installed in python3." }, globallyEnabled: false });
    assert.equal(v.command, "wren.showStatus");
    assert.equal(v.errorMessage, "Wren is not installed in python3.");
  });

  it("disabled globally, by the server, or for the language", () => {
    const off = renderStatus({ ...base, globallyEnabled: false, server: { state: "ready" } });
    assert.match(off.text, /circle-slash/);
    assert.match(off.tooltip, /turn completions on/);
    assert.equal(off.command, "wren.toggleCompletions");
    assert.match(renderStatus({ ...base, server: { state: "disabled" } }).text, /circle-slash/);
    const lang = renderStatus({ ...base, languageEnabled: false, languageId: "markdown", server: { state: "ready" } });
    assert.match(lang.tooltip, /off for markdown/);
  });
});

describe("parseServerStatus", () => {
  it("accepts the protocol's payload", () => {
    assert.deepEqual(parseServerStatus({ state: "ready", model: "m", device: "cpu", message: "", progress: null }), {
      state: "ready",
      model: "m",
      device: "cpu",
      message: "",
      progress: null,
    });
  });
  it("rejects unknown states", () => {
    assert.equal(parseServerStatus({ state: "sleeping" }), undefined);
    assert.equal(parseServerStatus(null), undefined);
  });
});

describe("becameReady", () => {
  it("fires once when loading turns ready", () => {
    assert.equal(becameReady({ state: "loading" }, { state: "ready" }), true);
    assert.equal(becameReady(undefined, { state: "ready" }), true);
    assert.equal(becameReady({ state: "error" }, { state: "generating" }), true);
  });
  it("does not fire again while ready or generating, nor for non-ready states", () => {
    assert.equal(becameReady({ state: "ready" }, { state: "ready" }), false);
    assert.equal(becameReady({ state: "generating" }, { state: "ready" }), false);
    assert.equal(becameReady({ state: "ready" }, { state: "generating" }), false);
    assert.equal(becameReady({ state: "loading" }, { state: "error" }), false);
    assert.equal(becameReady(undefined, { state: "loading" }), false);
  });
});
