import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  buildInitializationOptions,
  buildServerSettings,
  nestSettings,
  schemaKeys,
  settingsSection,
  type ConfigurationReader,
  type InspectedValue,
} from "../src/pure/settings";

const manifest = JSON.parse(readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
const KEYS = schemaKeys(manifest);
const DEFAULTS: Record<string, unknown> = Object.fromEntries(
  Object.entries(manifest.contributes.configuration.properties as Record<string, { default: unknown }>).map(([k, v]) => [k, v.default]),
);

/** A fake configuration: defaults from package.json, plus user and workspace values. */
function reader(user: Record<string, unknown> = {}, workspace: Record<string, unknown> = {}): ConfigurationReader {
  return {
    get: (k) => (k in workspace ? workspace[k] : k in user ? user[k] : DEFAULTS[k]),
    inspect: (k): InspectedValue => ({ defaultValue: DEFAULTS[k], globalValue: user[k], workspaceValue: workspace[k] }),
  };
}

describe("settings", () => {
  it("the schema has the keys the server knows", () => {
    assert.ok(KEYS.includes("wren.enable"));
    assert.ok(KEYS.includes("wren.completion.debounceMs"));
    assert.ok(KEYS.every((k) => k.startsWith("wren.")));
  });

  it("nests dotted keys without the wren prefix", () => {
    assert.deepEqual(nestSettings({ "wren.model.path": "/m", "wren.enable": { "*": true }, "wren.model.device": "cpu" }), {
      model: { path: "/m", device: "cpu" },
      enable: { "*": true },
    });
  });

  it("sends every schema key with its default", () => {
    const s = buildServerSettings(KEYS, reader(), true);
    for (const key of KEYS) {
      assert.deepEqual(settingsSection(s, key), DEFAULTS[key], key);
    }
    assert.deepEqual(s.enable, { "*": true });
    assert.equal((s.completion as Record<string, unknown>).debounceMs, 120);
    assert.deepEqual(s.verify, { runCode: false, maxRounds: 2, timeoutSeconds: 5 });
    assert.deepEqual(s.server, { pythonPath: "" });
  });

  it("trusted: workspace values apply", () => {
    const s = buildInitializationOptions(
      KEYS,
      reader({ "wren.model.path": "/user/model" }, { "wren.model.path": "/ws/model", "wren.verify.runCode": true }),
      true,
    );
    assert.equal(s.workspaceTrusted, true);
    assert.equal((s.settings.model as Record<string, unknown>).path, "/ws/model");
    assert.equal((s.settings.verify as Record<string, unknown>).runCode, true);
  });

  it("restricted: workspace values of restricted settings are dropped and runCode is forced off", () => {
    const s = buildInitializationOptions(
      KEYS,
      reader(
        { "wren.model.path": "/user/model", "wren.verify.runCode": true },
        {
          "wren.model.path": "/ws/evil",
          "wren.server.pythonPath": "/ws/python",
          "wren.verify.runCode": true,
          "wren.completion.maxTokens": 16,
        },
      ),
      false,
    );
    assert.equal(s.workspaceTrusted, false);
    assert.equal((s.settings.model as Record<string, unknown>).path, "/user/model");
    assert.equal((s.settings.server as Record<string, unknown>).pythonPath, "");
    assert.equal((s.settings.verify as Record<string, unknown>).runCode, false, "even the user's own true");
    assert.equal((s.settings.completion as Record<string, unknown>).maxTokens, 16, "unrestricted workspace settings still apply");
  });

  it("restricted: a workspace cannot point Wren at another inference server", () => {
    const workspace = {
      "wren.model.endpoint": "http://10.1.2.3:8000",
      "wren.model.apiKeyEnv": "AWS_SECRET_ACCESS_KEY",
      "wren.model.allowInsecureEndpoint": true,
      "wren.model.servedModel": "ws-model",
    };
    const untrusted = buildInitializationOptions(KEYS, reader({}, workspace), false);
    const model = untrusted.settings.model as Record<string, unknown>;
    assert.equal(model.endpoint, "", "the workspace endpoint is ignored");
    assert.equal(model.apiKeyEnv, "WREN_API_KEY");
    assert.equal(model.allowInsecureEndpoint, false);
    const own = buildInitializationOptions(
      KEYS,
      reader({ "wren.model.endpoint": "https://llm.example.com", "wren.model.allowInsecureEndpoint": true }, workspace),
      false,
    );
    const mine = own.settings.model as Record<string, unknown>;
    assert.equal(mine.endpoint, "https://llm.example.com", "the user's own endpoint stays");
    assert.equal(mine.allowInsecureEndpoint, false, "even the user's own true");
    const trusted = buildInitializationOptions(KEYS, reader({}, workspace), true);
    assert.equal((trusted.settings.model as Record<string, unknown>).endpoint, "http://10.1.2.3:8000");
  });

  it("returns plain JSON copies (VS Code hands out frozen proxies)", () => {
    const frozen = Object.freeze({ "*": false });
    const s = buildServerSettings(["wren.enable"], reader({ "wren.enable": frozen }), true);
    assert.deepEqual(s.enable, { "*": false });
    assert.notEqual(s.enable, frozen);
  });

  it("answers workspace/configuration sections", () => {
    const nested = buildServerSettings(KEYS, reader(), true);
    assert.equal(settingsSection(nested, "wren.completion.maxTokens"), 64);
    assert.deepEqual(settingsSection(nested, "wren.model"), {
      path: "",
      device: "auto",
      quantize: "none",
      adapter: "auto",
      endpoint: "",
      servedModel: "",
      endpointCard: "auto",
      apiKeyEnv: "WREN_API_KEY",
      allowInsecureEndpoint: false,
    });
    assert.equal(settingsSection(nested, "wren"), nested);
    assert.equal(settingsSection(nested, "python.path"), undefined);
  });

  it("declares the restricted settings in capabilities.untrustedWorkspaces", () => {
    const u = manifest.capabilities.untrustedWorkspaces;
    assert.equal(u.supported, "limited");
    assert.deepEqual([...u.restrictedConfigurations].sort(), [
      "wren.model.adapter",
      "wren.model.allowInsecureEndpoint",
      "wren.model.apiKeyEnv",
      "wren.model.endpoint",
      "wren.model.path",
      "wren.server.pythonPath",
      "wren.verify.runCode",
    ]);
  });
});
