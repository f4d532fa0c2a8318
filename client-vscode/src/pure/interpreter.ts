// Which Python runs `python -m wren serve`. No `vscode` import: the extension gathers the
// inputs (setting, Python extension, folders) and passes probes for the file system.
import * as path from "node:path";

export type InterpreterSource = "setting" | "python-extension" | "dev-venv" | "workspace-venv" | "fallback";

export interface ResolvedInterpreter {
  path: string;
  source: InterpreterSource;
}

export interface InterpreterInputs {
  /** `wren.server.pythonPath` (raw; variables are expanded here). */
  settingPath?: string;
  /** The Python extension's active interpreter for the workspace, when that extension is installed. */
  pythonExtensionPath?: string;
  /** Where the extension is installed (`ExtensionContext.extensionPath`). */
  extensionPath: string;
  workspaceFolders: readonly string[];
  /** In Restricted Mode a workspace's own `.venv` is never run (not even to probe it). */
  workspaceTrusted: boolean;
  platform: NodeJS.Platform;
  homeDir: string;
  env: Readonly<Record<string, string | undefined>>;
}

export interface InterpreterProbes {
  isFile(p: string): Promise<boolean>;
  /** Whether `import wren` works in this interpreter. */
  hasWren(python: string): Promise<boolean>;
}

/** `bin/python` or `Scripts\python.exe` inside a virtual environment. */
export function venvPython(venvDir: string, platform: NodeJS.Platform): string {
  return platform === "win32"
    ? path.win32.join(venvDir, "Scripts", "python.exe")
    : path.posix.join(venvDir, "bin", "python");
}

/** Expands `~`, `${userHome}`, `${workspaceFolder}` and `${env:NAME}` in a configured path. */
export function expandPath(
  raw: string,
  opts: { homeDir: string; workspaceFolder?: string; env: Readonly<Record<string, string | undefined>> },
): string {
  let p = raw.trim();
  if (p === "~" || p.startsWith("~/") || p.startsWith("~\\")) {
    p = opts.homeDir + p.slice(1);
  }
  p = p.replace(/\$\{userHome\}/g, opts.homeDir);
  if (opts.workspaceFolder !== undefined) {
    p = p.replace(/\$\{workspaceFolder\}/g, opts.workspaceFolder);
  }
  p = p.replace(/\$\{env:([^}]+)\}/g, (_m, name: string) => opts.env[name] ?? "");
  return p;
}

/**
 * The interpreter, in this order:
 *   1. `wren.server.pythonPath`;
 *   2. the Python extension's active interpreter;
 *   3. developing from a clone: the repository's `.venv` next to `client-vscode/`
 *      (`<extensionPath>/../.venv`), then, in a trusted workspace only, a workspace folder's
 *      `.venv` that has wren installed;
 *   4. `python3` (`python` on Windows) from PATH.
 */
export async function resolveInterpreter(
  inputs: InterpreterInputs,
  probes: InterpreterProbes,
): Promise<ResolvedInterpreter> {
  const setting = inputs.settingPath?.trim();
  if (setting) {
    return {
      path: expandPath(setting, {
        homeDir: inputs.homeDir,
        workspaceFolder: inputs.workspaceFolders[0],
        env: inputs.env,
      }),
      source: "setting",
    };
  }
  if (inputs.pythonExtensionPath?.trim()) {
    return { path: inputs.pythonExtensionPath.trim(), source: "python-extension" };
  }
  const devVenv = venvPython(path.resolve(inputs.extensionPath, "..", ".venv"), inputs.platform);
  if (await probes.isFile(devVenv)) {
    return { path: devVenv, source: "dev-venv" };
  }
  for (const folder of inputs.workspaceTrusted ? inputs.workspaceFolders : []) {
    const candidate = venvPython(path.join(folder, ".venv"), inputs.platform);
    if ((await probes.isFile(candidate)) && (await probes.hasWren(candidate))) {
      return { path: candidate, source: "workspace-venv" };
    }
  }
  return { path: inputs.platform === "win32" ? "python" : "python3", source: "fallback" };
}

/** Quotes a path for a shell command the user copies (POSIX shells and PowerShell both accept "..."). */
export function shellQuote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `"${p.replace(/(["\\$`])/g, "\\$1")}"`;
}

/**
 * The command that makes `import wren` work in `python`: an editable install of the Wren checkout
 * (the one this extension was built in when we can find it, else a placeholder path to fill in).
 * With -P (safe path): run in a workspace folder, `-m pip` would otherwise import its `pip/`.
 */
export function installCommand(python: string, repoRoot: string | undefined): string {
  return `${shellQuote(python)} -P -m pip install -e ${repoRoot ? shellQuote(repoRoot) : "/path/to/wren"}`;
}

export function describeSource(source: InterpreterSource): string {
  switch (source) {
    case "setting":
      return "wren.server.pythonPath";
    case "python-extension":
      return "the Python extension's selected interpreter";
    case "dev-venv":
      return "the Wren checkout's .venv";
    case "workspace-venv":
      return "the workspace's .venv";
    case "fallback":
      return "python3 on PATH";
  }
}
