// Wren's editor commands: Explain, Fix, Generate from Comment, Why No Completion?
// Each calls the server (docs/protocol.md) and renders the answer; none holds prompt logic.
import { randomUUID } from "node:crypto";
import * as path from "node:path";
import * as vscode from "vscode";
import { ExecuteCommandRequest, WorkDoneProgress, type LanguageClient } from "vscode-languageclient/node";
import type { DiffPreviews } from "./diffPreview";
import type { MarkdownPanel } from "./panel";
import {
  noEditMessage,
  parseEditResult,
  parseExplainResult,
  parseTargetArgs,
  previewMessage,
  workspaceEditIsEmpty,
  type LspRange,
} from "./pure/commands";
import { renderLastCompletion, type LastCompletion } from "./pure/lastCompletion";
import type { WrenServer } from "./server";

const CANCELLED = Symbol("cancelled");
type Outcome<T> = { cancelled: true } | { cancelled: false; value: T };

interface Target {
  document: vscode.TextDocument;
  uri: string;
  range?: LspRange;
  editor?: vscode.TextEditor;
}

/** Shown above a streamed explanation until the server has checked it against the code. */
const EXPLAIN_DRAFT_STATUS = "Draft, not checked yet: checking it against the code when it is done…";

export class WrenActions implements vscode.Disposable {
  private explainId: string | undefined;
  private explainTitle = "";
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly server: WrenServer,
    private readonly explainPanel: MarkdownPanel,
    private readonly infoPanel: MarkdownPanel,
    private readonly previews: DiffPreviews,
    private readonly log: vscode.LogOutputChannel,
  ) {
    server.addClientListener((client) => [
      client.onNotification("wren/explainChunk", (raw: unknown) => this.onExplainChunk(raw)),
    ]);
    this.disposables.push(
      vscode.commands.registerCommand("wren.explain", (...args: unknown[]) => this.explain(args)),
      vscode.commands.registerCommand("wren.fix", (...args: unknown[]) => this.fix(args)),
      vscode.commands.registerCommand("wren.generate", () => this.generate()),
      vscode.commands.registerCommand("wren.whyNoCompletion", () => this.whyNoCompletion()),
    );
  }

  private requireClient(): LanguageClient | undefined {
    const client = this.server.running;
    if (!client) {
      void vscode.window
        .showErrorMessage("The Wren server is not running.", "Show Logs", "Restart Server")
        .then((c) => {
          if (c === "Show Logs") {
            this.log.show(true);
          } else if (c === "Restart Server") {
            void vscode.commands.executeCommand("wren.restartServer");
          }
        });
    }
    return client;
  }

  /** The document and range a command works on: its arguments, else the active editor's selection. */
  private async target(args: readonly unknown[]): Promise<Target | undefined> {
    const given = parseTargetArgs(args);
    const active = vscode.window.activeTextEditor;
    let document: vscode.TextDocument | undefined;
    if (given.uri && given.uri !== active?.document.uri.toString()) {
      document = await vscode.workspace.openTextDocument(vscode.Uri.parse(given.uri));
    } else {
      document = active?.document;
    }
    if (!document) {
      void vscode.window.showInformationMessage("Open a file first: Wren works on the active editor.");
      return undefined;
    }
    const editor = active && active.document === document ? active : undefined;
    let range = given.range;
    if (!range && editor && !editor.selection.isEmpty) {
      range = lspRange(editor.selection);
    }
    return { document, uri: document.uri.toString(), range, editor };
  }

  /**
   * `workspace/executeCommand` behind a cancellable progress notification. Cancelling sends
   * `$/cancelRequest` and resolves at once: a late answer is dropped, nothing is applied.
   */
  private runCancellable<T>(client: LanguageClient, title: string, command: string, args: unknown[]): Thenable<Outcome<T>> {
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, token) => {
        const workDoneToken = randomUUID();
        const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind !== "end" && value.message) {
            progress.report({ message: value.message });
          }
        });
        let cancelSub: vscode.Disposable | undefined;
        const cancelled = new Promise<typeof CANCELLED>((resolve) => {
          cancelSub = token.onCancellationRequested(() => resolve(CANCELLED));
        });
        const request = client.sendRequest(
          ExecuteCommandRequest.type,
          { command, arguments: args, workDoneToken },
          token,
        ) as Promise<T>;
        request.catch(() => undefined); // a rejection after cancel is expected
        try {
          const result = await Promise.race([request, cancelled]);
          if (result === CANCELLED || token.isCancellationRequested) {
            this.log.info(`${command} cancelled by the user.`);
            return { cancelled: true } as const;
          }
          return { cancelled: false, value: result as T } as const;
        } catch (err) {
          if (token.isCancellationRequested) {
            return { cancelled: true } as const;
          }
          throw err;
        } finally {
          sub.dispose();
          cancelSub?.dispose();
        }
      },
    );
  }

  private onExplainChunk(raw: unknown): void {
    const chunk = raw as { id?: unknown; markdown?: unknown; done?: unknown; checked?: unknown };
    if (typeof chunk?.id !== "string" || chunk.id !== this.explainId || typeof chunk.markdown !== "string") {
      return;
    }
    // The server streams an unchecked draft ("checked": false), then sends the text it checked
    // against the code, which replaces the draft (removed sentences are in the Wren log).
    const status =
      chunk.done === true ? undefined : chunk.checked === false ? EXPLAIN_DRAFT_STATUS : "Explaining…";
    this.explainPanel.update(this.explainTitle, chunk.markdown, status, chunk.done === true);
  }

  async explain(args: readonly unknown[]): Promise<void> {
    const client = this.requireClient();
    const target = client && (await this.target(args));
    if (!client || !target) {
      return;
    }
    const id = randomUUID();
    const where = target.range ? `:${target.range.start.line + 1}` : "";
    this.explainId = id;
    this.explainTitle = `Explain ${path.posix.basename(target.document.uri.path)}${where}`;
    const title = this.explainTitle;
    this.explainPanel.show(title, "", "Explaining…");
    try {
      const outcome = await this.runCancellable<unknown>(client, "Wren: explaining…", "wren.server.explain", [
        { uri: target.uri, ...(target.range ? { range: target.range } : {}), id },
      ]);
      if (this.explainId !== id) {
        return; // a newer explain took over the panel
      }
      if (outcome.cancelled) {
        this.explainPanel.update(title, "", "Cancelled.", true);
        return;
      }
      const result = parseExplainResult(outcome.value);
      if (!result) {
        this.explainPanel.update(title, "", "Wren returned no explanation.", true);
        return;
      }
      this.explainPanel.update(title, result.markdown, undefined, true);
    } catch (err) {
      this.explainPanel.update(title, "", `Explain failed: ${errorText(err)}`, true);
      void vscode.window.showErrorMessage(`Wren: Explain failed: ${errorText(err)}`);
    } finally {
      if (this.explainId === id) {
        this.explainId = undefined;
      }
    }
  }

  async fix(args: readonly unknown[]): Promise<void> {
    const client = this.requireClient();
    const target = client && (await this.target(args));
    if (!client || !target) {
      return;
    }
    const diagnostic = diagnosticAt(target);
    await this.proposeEdit(client, target, "fix", "Wren: fixing…", "wren.server.fix", {
      uri: target.uri,
      ...(target.range ? { range: target.range } : {}),
      ...(diagnostic ? { diagnostic } : {}),
    });
  }

  async generate(): Promise<void> {
    const client = this.requireClient();
    const editor = vscode.window.activeTextEditor;
    if (!client) {
      return;
    }
    if (!editor) {
      void vscode.window.showInformationMessage("Put the cursor on or below a comment that describes the code to generate.");
      return;
    }
    const position = editor.selection.active;
    const target: Target = { document: editor.document, uri: editor.document.uri.toString(), editor };
    await this.proposeEdit(client, target, "generate", "Wren: generating…", "wren.server.generate", {
      uri: target.uri,
      position: { line: position.line, character: position.character },
    });
  }

  private async proposeEdit(
    client: LanguageClient,
    target: Target,
    kind: "fix" | "generate",
    progressTitle: string,
    command: string,
    arg: Record<string, unknown>,
  ): Promise<void> {
    const versionAtRequest = target.document.version;
    let outcome: Outcome<unknown>;
    try {
      outcome = await this.runCancellable<unknown>(client, progressTitle, command, [arg]);
    } catch (err) {
      void vscode.window.showErrorMessage(`Wren: ${kind === "fix" ? "Fix" : "Generate"} failed: ${errorText(err)}`);
      return;
    }
    if (outcome.cancelled) {
      return;
    }
    const result = parseEditResult(outcome.value);
    if (!result) {
      void vscode.window.showErrorMessage(`Wren: the server returned an unexpected answer to ${command}.`);
      this.log.error(`${command} returned ${JSON.stringify(outcome.value)}`);
      return;
    }
    if (result.edit === null || workspaceEditIsEmpty(result.edit)) {
      void vscode.window.showWarningMessage(noEditMessage(result, kind));
      return;
    }
    if (target.document.version !== versionAtRequest) {
      void vscode.window.showWarningMessage("Wren: the document changed while the change was being prepared. Run the command again.");
      return;
    }
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(
      result.edit as Parameters<typeof client.protocol2CodeConverter.asWorkspaceEdit>[0],
    );
    if (!edit) {
      return;
    }
    await this.previews.previewAndApply(edit, `Wren: ${result.title}`, previewMessage(result, kind));
  }

  async whyNoCompletion(): Promise<void> {
    const client = this.requireClient();
    const editor = vscode.window.activeTextEditor;
    if (!client) {
      return;
    }
    if (!editor) {
      void vscode.window.showInformationMessage("Open the file where you expected a completion, then run this again.");
      return;
    }
    const position = editor.selection.active;
    const label = path.posix.basename(editor.document.uri.path);
    try {
      const details = await client.sendRequest<LastCompletion | null>("wren/lastCompletion", {
        textDocument: { uri: editor.document.uri.toString() },
        position: { line: position.line, character: position.character },
      });
      this.infoPanel.show(`Why no completion? ${label}`, renderLastCompletion(details, label));
    } catch (err) {
      void vscode.window.showErrorMessage(`Wren: could not get the completion details: ${errorText(err)}`);
    }
  }

  dispose(): void {
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}

function lspRange(r: vscode.Range): LspRange {
  return {
    start: { line: r.start.line, character: r.start.character },
    end: { line: r.end.line, character: r.end.character },
  };
}

/** The message of the most severe diagnostic at the target (range, else cursor), for Fix. */
function diagnosticAt(target: Target): string | undefined {
  const where = target.range
    ? new vscode.Range(target.range.start.line, target.range.start.character, target.range.end.line, target.range.end.character)
    : target.editor?.selection;
  const diagnostics = vscode.languages
    .getDiagnostics(target.document.uri)
    .filter((d) => !where || d.range.intersection(where) !== undefined || d.range.start.line === where.start.line)
    .sort((a, b) => a.severity - b.severity);
  return diagnostics[0]?.message;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
