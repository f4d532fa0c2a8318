// The status bar item: loading / ready / generating / error / disabled. Text and behaviour come
// from pure/status.ts; this file only keeps the inputs current and applies the view.
import * as vscode from "vscode";
import { isGloballyEnabled, isLanguageEnabled, type EnableMap } from "./pure/languages";
import { becameReady, renderStatus, type ClientState, type ServerStatus, type StatusView } from "./pure/status";

export class WrenStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private client: ClientState = { kind: "starting" };
  private server: ServerStatus | undefined;
  private view: StatusView | undefined;

  constructor() {
    this.item = vscode.window.createStatusBarItem("wren.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Wren";
    this.disposables.push(
      this.item,
      vscode.window.onDidChangeActiveTextEditor(() => this.refresh()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("wren.enable")) {
          this.refresh();
        }
      }),
    );
    this.refresh();
    this.item.show();
  }

  setClientState(state: ClientState): void {
    this.client = state;
    if (state.kind !== "running") {
      this.server = undefined;
    }
    this.refresh();
  }

  setServerStatus(status: ServerStatus): void {
    const justReady = becameReady(this.server, status);
    this.server = status;
    this.refresh();
    if (justReady) {
      this.askAgainAtCursor();
    }
  }

  /** Typing while the model loaded got empty answers; ask once more where the cursor is now. */
  private askAgainAtCursor(): void {
    const editor = vscode.window.activeTextEditor;
    const enable = vscode.workspace.getConfiguration("wren").get<EnableMap>("enable");
    if (!editor || !editor.selection.isEmpty || !isLanguageEnabled(enable, editor.document.languageId)) {
      return;
    }
    void vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
  }

  get serverStatus(): ServerStatus | undefined {
    return this.server;
  }

  get current(): StatusView | undefined {
    return this.view;
  }

  refresh(): void {
    const enable = vscode.workspace.getConfiguration("wren").get<EnableMap>("enable");
    const editor = vscode.window.activeTextEditor;
    const languageId = editor?.document.languageId;
    this.view = renderStatus({
      client: this.client,
      server: this.server,
      globallyEnabled: isGloballyEnabled(enable),
      languageEnabled: languageId === undefined ? undefined : isLanguageEnabled(enable, languageId),
      languageId,
    });
    this.item.text = this.view.text;
    this.item.tooltip = this.view.tooltip;
    this.item.command = this.view.command;
    this.item.backgroundColor =
      this.view.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : this.view.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    this.item.accessibilityInformation = { label: this.view.tooltip };
  }

  dispose(): void {
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
