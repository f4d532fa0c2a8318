// The wren.* settings as the server receives them, built from VS Code's configuration.
// No `vscode` import: extension.ts passes accessors in, tests pass plain objects.

/** The settings whose workspace values VS Code (and Wren) ignore in Restricted Mode. */
export const RESTRICTED_KEYS: readonly string[] = [
  "wren.model.path",
  "wren.model.endpoint",
  "wren.model.apiKeyEnv",
  "wren.model.allowInsecureEndpoint",
  "wren.server.pythonPath",
  "wren.verify.runCode",
];

/** Settings Restricted Mode forces off, whatever level sets them. */
const FORCED_OFF_WHEN_UNTRUSTED: readonly string[] = ["wren.verify.runCode", "wren.model.allowInsecureEndpoint"];

/** Settings that only the client reads; changing them restarts the server instead of reconfiguring it. */
export const RESTART_KEYS: readonly string[] = ["wren.server.pythonPath"];

/** What `WorkspaceConfiguration.inspect` returns, reduced to the levels Wren cares about. */
export interface InspectedValue<T = unknown> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

export interface ConfigurationReader {
  /** The effective value, as `vscode.workspace.getConfiguration().get(key)` resolves it. */
  get(key: string): unknown;
  /** The value at each level. */
  inspect(key: string): InspectedValue | undefined;
}

/** The keys of the package.json schema (`contributes.configuration.properties`). */
export function schemaKeys(manifest: unknown): string[] {
  const props = (manifest as { contributes?: { configuration?: { properties?: object } } })
    ?.contributes?.configuration?.properties;
  return props ? Object.keys(props) : [];
}

/**
 * The value of one setting as Wren uses it. In Restricted Mode a restricted setting only takes
 * the user's own (global) value, and `verify.runCode` is always false: a workspace cannot make
 * Wren load another model, run another interpreter or execute code.
 */
export function effectiveValue(key: string, config: ConfigurationReader, trusted: boolean): unknown {
  if (!trusted && FORCED_OFF_WHEN_UNTRUSTED.includes(key)) {
    return false;
  }
  if (!trusted && RESTRICTED_KEYS.includes(key)) {
    const inspected = config.inspect(key);
    return inspected?.globalValue ?? inspected?.defaultValue;
  }
  return config.get(key);
}

/** `{"wren.model.path": x}` -> `{model: {path: x}}` (the leading `wren` section is dropped). */
export function nestSettings(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    if (parts[0] === "wren" && parts.length > 1) {
      parts.shift();
    }
    let node = out;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (typeof next !== "object" || next === null || Array.isArray(next)) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

/** The nested settings object for `initializationOptions.settings` and `didChangeConfiguration`. */
export function buildServerSettings(
  keys: readonly string[],
  config: ConfigurationReader,
  trusted: boolean,
): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  for (const key of keys) {
    const value = effectiveValue(key, config, trusted);
    if (value !== undefined) {
      flat[key] = cloneJson(value);
    }
  }
  return nestSettings(flat);
}

/** `initialize.initializationOptions` as docs/protocol.md specifies it. */
export function buildInitializationOptions(
  keys: readonly string[],
  config: ConfigurationReader,
  trusted: boolean,
): { settings: Record<string, unknown>; workspaceTrusted: boolean } {
  return { settings: buildServerSettings(keys, config, trusted), workspaceTrusted: trusted };
}

/** Which section of a nested settings object a `workspace/configuration` item asks for. */
export function settingsSection(nested: Record<string, unknown>, section: string): unknown {
  const parts = section.split(".");
  if (parts[0] !== "wren") {
    return undefined;
  }
  let node: unknown = nested;
  for (const part of parts.slice(1)) {
    if (typeof node !== "object" || node === null) {
      return undefined;
    }
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function cloneJson(value: unknown): unknown {
  // VS Code hands out frozen proxies for object settings; the protocol wants plain JSON.
  return value === null || typeof value !== "object" ? value : JSON.parse(JSON.stringify(value));
}
