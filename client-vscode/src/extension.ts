// Wren's VS Code client: starts `python -m wren serve`, shows its state, forwards commands.
// Inline completions come from vscode-languageclient's built-in inline completion feature;
// the middleware in server.ts adds the debounce and the per-language switch.
import * as vscode from "vscode";
import { WrenActions } from "./actions";
import { forwardCursorPauses } from "./cursor";
import { DiffPreviews } from "./diffPreview";
import { MarkdownPanel } from "./panel";
import { onPythonInterpreterChanged } from "./python";
import { toggleGlobal, toggleTarget, type EnableMap } from "./pure/languages";
import { RESTART_KEYS } from "./pure/settings";
import { WrenServer } from "./server";
import { WrenStatusBar } from "./statusBar";
import { tuneWorkspace } from "./tune";

let server: WrenServer | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("Wren", { log: true });
  const status = new WrenStatusBar();
  server = new WrenServer(context, log, status);
  const previews = new DiffPreviews();
  const explainPanel = new MarkdownPanel("wren.explain");
  const infoPanel = new MarkdownPanel("wren.completionDetails");
  const actions = new WrenActions(server, explainPanel, infoPanel, previews, log);
  const wren = server;

  context.subscriptions.push(
    log,
    status,
    wren,
    previews,
    explainPanel,
    infoPanel,
    actions,
    forwardCursorPauses(wren),
    vscode.commands.registerCommand("wren.restartServer", () => wren.restart("requested by the user")),
    vscode.commands.registerCommand("wren.toggleCompletions", toggleCompletions),
    vscode.commands.registerCommand("wren.showLogs", () => log.show(true)),
    vscode.commands.registerCommand("wren.showStatus", () => showStatus(status, log)),
    vscode.commands.registerCommand("wren.tuneWorkspace", () => tuneWorkspace(context, wren, log)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k))) {
        void wren.restart("wren.server.pythonPath changed");
      }
    }),
    // The server learns about trust from initializationOptions: start it again when trust is granted.
    vscode.workspace.onDidGrantWorkspaceTrust(() => void wren.restart("the workspace is now trusted")),
  );
  log.info(`Wren ${context.extension.packageJSON.version} activating; workspace trusted: ${vscode.workspace.isTrusted}`);

  // Follow the Python extension's interpreter (only used when wren.server.pythonPath is empty).
  void onPythonInterpreterChanged(() => {
    const configured = vscode.workspace.getConfiguration("wren").get<string>("server.pythonPath");
    const current = wren.interpreterInUse;
    if (!configured?.trim() && (current?.source !== "setting")) {
      void wren.restart("the Python extension's interpreter changed");
    }
  }, log).then((d) => d && context.subscriptions.push(d));

  void wren.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}

async function toggleCompletions(): Promise<void> {
  const resource = vscode.window.activeTextEditor?.document.uri;
  const config = vscode.workspace.getConfiguration("wren", resource);
  const inspected = config.inspect<EnableMap>("enable");
  const level = toggleTarget(inspected);
  const atLevel =
    level === "workspaceFolder" ? inspected?.workspaceFolderValue : level === "workspace" ? inspected?.workspaceValue : inspected?.globalValue;
  const next = toggleGlobal(atLevel, config.get<EnableMap>("enable"));
  const target =
    level === "workspaceFolder"
      ? vscode.ConfigurationTarget.WorkspaceFolder
      : level === "workspace"
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
  await config.update("enable", next, target);
  vscode.window.setStatusBarMessage(next["*"] ? "Wren completions on" : "Wren completions off", 2000);
}

async function showStatus(status: WrenStatusBar, log: vscode.LogOutputChannel): Promise<void> {
  const view = status.current;
  if (view?.errorMessage) {
    const choice = await vscode.window.showErrorMessage(view.errorMessage, "Show Logs", "Restart Server");
    if (choice === "Show Logs") {
      log.show(true);
    } else if (choice === "Restart Server") {
      await vscode.commands.executeCommand("wren.restartServer");
    }
    return;
  }
  const choice = await vscode.window.showInformationMessage(view?.tooltip ?? "Wren", "Toggle Completions", "Show Logs");
  if (choice === "Toggle Completions") {
    await toggleCompletions();
  } else if (choice === "Show Logs") {
    log.show(true);
  }
}
