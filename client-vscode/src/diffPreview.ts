// Fix / Generate results as a diff preview: the current document on the left, a read-only
// virtual document with the edit applied on the right. The edit is applied only on "Apply".
import * as path from "node:path";
import * as vscode from "vscode";
import { applyOffsetEdits, lineDelta } from "./pure/textEdits";

export const PREVIEW_SCHEME = "wren-preview";

interface PendingPreview {
  previewUris: vscode.Uri[];
  resolve(choice: "apply" | "discard"): void;
}

export class DiffPreviews implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly contents = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [];
  private pending: PendingPreview | undefined;
  private counter = 0;

  constructor() {
    this.disposables.push(
      vscode.workspace.registerTextDocumentContentProvider(PREVIEW_SCHEME, this),
      vscode.commands.registerCommand("wren.applyPreview", () => this.pending?.resolve("apply")),
      vscode.commands.registerCommand("wren.discardPreview", () => this.pending?.resolve("discard")),
      this.changed,
    );
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? "";
  }

  /**
   * Shows `edit` as diffs and asks Apply / Discard. Applies it only on Apply, and only if the
   * documents did not change meanwhile. Returns whether it was applied.
   */
  async previewAndApply(edit: vscode.WorkspaceEdit, title: string, question: string): Promise<boolean> {
    this.pending?.resolve("discard");
    const entries = edit.entries();
    if (entries.length === 0) {
      return false;
    }
    const versions = new Map<string, number>();
    const previewUris: vscode.Uri[] = [];
    const id = ++this.counter;
    let summary = "";
    for (const [uri, textEdits] of entries) {
      const doc = await vscode.workspace.openTextDocument(uri);
      versions.set(uri.toString(), doc.version);
      const before = doc.getText();
      const after = applyOffsetEdits(
        before,
        textEdits.map((e) => ({ start: doc.offsetAt(e.range.start), end: doc.offsetAt(e.range.end), newText: e.newText })),
      );
      // Keep the file name so the preview gets the same language mode (and highlighting).
      const previewUri = vscode.Uri.from({
        scheme: PREVIEW_SCHEME,
        path: `/${id}/${path.posix.basename(uri.path) || "untitled"}`,
        query: uri.toString(),
      });
      this.contents.set(previewUri.toString(), after);
      this.changed.fire(previewUri);
      previewUris.push(previewUri);
      const delta = lineDelta(before, after);
      summary = `+${delta.added} −${delta.removed} lines`;
      await vscode.commands.executeCommand(
        "vscode.diff",
        uri,
        previewUri,
        `${title}: ${path.posix.basename(uri.path)} ↔ proposed (${summary})`,
        { preview: true, viewColumn: vscode.ViewColumn.Active },
      );
    }
    await vscode.commands.executeCommand("setContext", "wren.previewActive", true);
    const choice = await new Promise<"apply" | "discard">((resolve) => {
      const pending: PendingPreview = { previewUris, resolve };
      this.pending = pending;
      void vscode.window
        .showInformationMessage(question, "Apply", "Discard")
        .then((answer) => pending.resolve(answer === "Apply" ? "apply" : "discard"));
    }).finally(() => {
      this.pending = undefined;
      void vscode.commands.executeCommand("setContext", "wren.previewActive", false);
    });
    await this.closeDiffs(previewUris);
    for (const u of previewUris) {
      this.contents.delete(u.toString());
    }
    if (choice !== "apply") {
      return false;
    }
    for (const [uri] of entries) {
      const doc = await vscode.workspace.openTextDocument(uri);
      if (doc.version !== versions.get(uri.toString())) {
        void vscode.window.showWarningMessage(
          `Wren did not apply the change: ${path.posix.basename(uri.path)} was edited while the preview was open. Run the command again.`,
        );
        return false;
      }
    }
    const applied = await vscode.workspace.applyEdit(edit);
    if (!applied) {
      void vscode.window.showErrorMessage("Wren could not apply the change.");
    }
    return applied;
  }

  private async closeDiffs(previewUris: vscode.Uri[]): Promise<void> {
    const wanted = new Set(previewUris.map((u) => u.toString()));
    const tabs = vscode.window.tabGroups.all
      .flatMap((g) => g.tabs)
      .filter((t) => t.input instanceof vscode.TabInputTextDiff && wanted.has(t.input.modified.toString()));
    if (tabs.length) {
      await vscode.window.tabGroups.close(tabs, true);
    }
  }

  dispose(): void {
    this.pending?.resolve("discard");
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}
