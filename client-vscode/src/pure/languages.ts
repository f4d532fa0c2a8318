// The `wren.enable` map: `{"*": true, "markdown": false}`. Mirrors Settings.language_enabled
// in server/wren/config.py so that client and server agree on what is switched off.

export type EnableMap = Record<string, unknown>;

/** A language's own entry wins over "*"; anything missing means enabled. */
export function isLanguageEnabled(enable: EnableMap | undefined, languageId: string): boolean {
  if (!enable || typeof enable !== "object") {
    return true;
  }
  if (Object.prototype.hasOwnProperty.call(enable, languageId) && typeof enable[languageId] === "boolean") {
    return enable[languageId] as boolean;
  }
  const all = enable["*"];
  return typeof all === "boolean" ? all : true;
}

/** Whether completions are on globally (the "*" entry). */
export function isGloballyEnabled(enable: EnableMap | undefined): boolean {
  const all = enable?.["*"];
  return typeof all === "boolean" ? all : true;
}

/**
 * The map to write when the status bar / `Wren: Toggle Completions` flips "*": the value stored at
 * the level being written (`atLevel`), with "*" set to the opposite of the effective state.
 */
export function toggleGlobal(atLevel: EnableMap | undefined, effective: EnableMap | undefined = atLevel): Record<string, unknown> {
  const current = atLevel && typeof atLevel === "object" ? { ...atLevel } : {};
  current["*"] = !isGloballyEnabled(effective);
  return current;
}

export type ConfigLevel = "global" | "workspace" | "workspaceFolder";

/**
 * Where to write a toggled `wren.enable`: the most specific level that already sets it, so that
 * the change takes effect (writing user settings under a workspace value would do nothing).
 */
export function toggleTarget(inspected: {
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
} | undefined): ConfigLevel {
  if (inspected?.workspaceFolderValue !== undefined) {
    return "workspaceFolder";
  }
  if (inspected?.workspaceValue !== undefined) {
    return "workspace";
  }
  return "global";
}
