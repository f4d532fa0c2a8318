// Finding the Python that runs the server: wren.server.pythonPath, the Python extension's active
// interpreter, a Wren checkout's .venv, python3. The order lives in pure/interpreter.ts.
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import { resolveInterpreter, type ResolvedInterpreter } from "./pure/interpreter";
import { IMPORT_CHECK_ARGS, isTooOldForSafePath, neutralCwd } from "./pure/launch";
import { effectiveValue } from "./pure/settings";

/** The part of the ms-python.python API Wren uses (`@vscode/python-extension`'s `environments`). */
interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
  resolveEnvironment(env: { id: string; path: string } | string): Promise<
    { executable: { uri?: vscode.Uri } } | undefined
  >;
  onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
}

const PYTHON_EXTENSION_ID = "ms-python.python";

async function pythonExtensionApi(log: vscode.LogOutputChannel): Promise<PythonEnvironmentsApi | undefined> {
  const ext = vscode.extensions.getExtension<{ environments?: PythonEnvironmentsApi }>(PYTHON_EXTENSION_ID);
  if (!ext) {
    return undefined;
  }
  try {
    const api = ext.isActive ? ext.exports : await ext.activate();
    return api?.environments;
  } catch (err) {
    log.warn(`The Python extension did not activate: ${String(err)}`);
    return undefined;
  }
}

/** Calls `listener` when the Python extension's active interpreter changes. */
export async function onPythonInterpreterChanged(
  listener: () => void,
  log: vscode.LogOutputChannel,
): Promise<vscode.Disposable | undefined> {
  const api = await pythonExtensionApi(log);
  return api?.onDidChangeActiveEnvironmentPath(() => listener());
}

async function activeInterpreterFromPythonExtension(log: vscode.LogOutputChannel): Promise<string | undefined> {
  const api = await pythonExtensionApi(log);
  if (!api) {
    return undefined;
  }
  try {
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const env = await api.resolveEnvironment(api.getActiveEnvironmentPath(resource));
    return env?.executable.uri?.fsPath;
  } catch (err) {
    log.warn(`Could not ask the Python extension for its interpreter: ${String(err)}`);
    return undefined;
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

export interface ImportCheck {
  ok: boolean;
  /** What went wrong, for the log and the notification. */
  detail: string;
  /** The interpreter does not exist / cannot be executed at all. */
  missingInterpreter: boolean;
}

/**
 * The working directory for every Python we start: the extension's global storage folder (created
 * if needed), else the temp folder; never a workspace folder (see pure/launch.ts).
 */
export async function launchCwd(context: vscode.ExtensionContext): Promise<string> {
  let storage: string | undefined = context.globalStorageUri.fsPath;
  try {
    await fs.mkdir(storage, { recursive: true });
  } catch {
    storage = undefined;
  }
  const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
  return neutralCwd([storage, os.tmpdir()], folders, process.platform);
}

/**
 * Runs `<python> -P -c "import wren"` from `cwd` (with a timeout): can this interpreter serve?
 * Same rules as the server (pure/launch.ts): a workspace's `wren/` must not answer for it.
 */
export function checkWrenImport(python: string, cwd: string, timeoutMs = 30_000): Promise<ImportCheck> {
  return new Promise((resolve) => {
    execFile(python, [...IMPORT_CHECK_ARGS], { cwd, timeout: timeoutMs, windowsHide: true }, (error, stdout, stderr) => {
      if (!error) {
        resolve({ ok: true, detail: stdout.trim(), missingInterpreter: false });
        return;
      }
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EACCES") {
        resolve({ ok: false, detail: `${python} cannot be run (${code}).`, missingInterpreter: true });
        return;
      }
      if (isTooOldForSafePath(stderr)) {
        // Python < 3.11 rejects -P; installing Wren there would not help.
        resolve({ ok: false, detail: `${python} is older than Python 3.11, which Wren requires.`, missingInterpreter: true });
        return;
      }
      const lastLine = stderr.trim().split("\n").pop() ?? String(error);
      resolve({ ok: false, detail: lastLine, missingInterpreter: false });
    });
  });
}

/** The interpreter to run the server with, following wren.server.pythonPath and workspace trust. */
export async function findInterpreter(
  context: vscode.ExtensionContext,
  log: vscode.LogOutputChannel,
): Promise<ResolvedInterpreter> {
  const config = vscode.workspace.getConfiguration();
  const settingPath = effectiveValue(
    "wren.server.pythonPath",
    { get: (k) => config.get(k), inspect: (k) => config.inspect(k) },
    vscode.workspace.isTrusted,
  );
  const folders = (vscode.workspace.workspaceFolders ?? [])
    .filter((f) => f.uri.scheme === "file")
    .map((f) => f.uri.fsPath);
  const needsPythonExtension = !(typeof settingPath === "string" && settingPath.trim());
  return resolveInterpreter(
    {
      settingPath: typeof settingPath === "string" ? settingPath : undefined,
      pythonExtensionPath: needsPythonExtension ? await activeInterpreterFromPythonExtension(log) : undefined,
      extensionPath: context.extensionPath,
      workspaceFolders: folders,
      workspaceTrusted: vscode.workspace.isTrusted,
      platform: process.platform,
      homeDir: os.homedir(),
      env: process.env,
    },
    { isFile, hasWren: async (python) => (await checkWrenImport(python, await launchCwd(context), 15_000)).ok },
  );
}

/**
 * The Wren checkout to `pip install -e`, if we can tell: the folder above the extension when it
 * runs from a clone, or a workspace folder that is one.
 */
export async function findWrenCheckout(context: vscode.ExtensionContext): Promise<string | undefined> {
  const candidates = [
    path.resolve(context.extensionPath, ".."),
    ...(vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath),
  ];
  for (const dir of candidates) {
    try {
      const pyproject = await fs.readFile(path.join(dir, "pyproject.toml"), "utf8");
      if (/^name\s*=\s*"wren"\s*$/m.test(pyproject) && (await isFile(path.join(dir, "server", "wren", "__init__.py")))) {
        return dir;
      }
    } catch {
      // not a checkout
    }
  }
  return undefined;
}
