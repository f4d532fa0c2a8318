// Tells the server where the cursor rests, so it can prefill the model's KV cache for that
// place before the first keystroke there (the server decides what to do; no logic here).
import * as vscode from "vscode";
import type { WrenServer } from "./server";

/** How long the cursor must rest before the server is told. */
export const CURSOR_PAUSE_MS = 300;

export function forwardCursorPauses(server: WrenServer): vscode.Disposable {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const sub = vscode.window.onDidChangeTextEditorSelection((e) => {
    if (timer) {
      clearTimeout(timer);
    }
    const selection = e.selections[0];
    if (!selection || !selection.isEmpty || e.textEditor !== vscode.window.activeTextEditor) {
      return;
    }
    const uri = e.textEditor.document.uri.toString();
    const position = { line: selection.active.line, character: selection.active.character };
    timer = setTimeout(() => {
      void server.running?.sendNotification("wren/cursorMoved", { textDocument: { uri }, position });
    }, CURSOR_PAUSE_MS);
  });
  return new vscode.Disposable(() => {
    if (timer) {
      clearTimeout(timer);
    }
    sub.dispose();
  });
}
