// A side panel that shows untrusted markdown (explanations, completion details).
// Scripts and command links are off; HTML comes from pure/markdown.ts (raw HTML escaped, CSP).
import * as vscode from "vscode";
import { renderPage } from "./pure/markdown";

export class MarkdownPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private pending: { title: string; markdown: string; status?: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastRender = 0;

  /** `viewType` identifies the panel kind; one panel of each kind is reused. */
  constructor(private readonly viewType: string) {}

  /** Shows (or reveals) the panel beside the editor with `markdown`. */
  show(title: string, markdown: string, status?: string): void {
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(
        this.viewType,
        title,
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: false, enableCommandUris: false, enableFindWidget: true, localResourceRoots: [] },
      );
      this.panel.onDidDispose(() => {
        this.panel = undefined;
      });
    } else if (!this.panel.visible) {
      this.panel.reveal(vscode.ViewColumn.Beside, true);
    }
    this.update(title, markdown, status, true);
  }

  /** Updates the content; streaming updates are throttled to ~8 per second. */
  update(title: string, markdown: string, status?: string, immediate = false): void {
    this.pending = { title, markdown, status };
    const wait = immediate ? 0 : Math.max(0, 125 - (Date.now() - this.lastRender));
    if (this.timer) {
      if (!immediate) {
        return;
      }
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => this.flush(), wait);
  }

  get isOpen(): boolean {
    return this.panel !== undefined;
  }

  private flush(): void {
    this.timer = undefined;
    const next = this.pending;
    if (!this.panel || !next) {
      return;
    }
    this.lastRender = Date.now();
    this.panel.title = next.title;
    this.panel.webview.html = renderPage(next);
  }

  dispose(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.panel?.dispose();
  }
}
