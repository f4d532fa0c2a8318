// Argument and result shapes of Wren's commands (docs/protocol.md), checked at the boundary.

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

export function isLspPosition(x: unknown): x is LspPosition {
  const p = x as LspPosition;
  return typeof x === "object" && x !== null && Number.isInteger(p.line) && Number.isInteger(p.character);
}

export function isLspRange(x: unknown): x is LspRange {
  const r = x as LspRange;
  return typeof x === "object" && x !== null && isLspPosition(r.start) && isLspPosition(r.end);
}

/**
 * The target of `wren.explain` / `wren.fix` when called with arguments: from the server's code
 * actions `[uri: string, range: Range]`, from the editor context menu `[uri: Uri]`, or from the
 * palette `[]`. Returns what was given; the caller fills the rest from the active editor.
 */
export function parseTargetArgs(args: readonly unknown[]): { uri?: string; range?: LspRange } {
  const [first, second] = args;
  let uri: string | undefined;
  if (typeof first === "string") {
    uri = first;
  } else if (typeof first === "object" && first !== null && typeof (first as { scheme?: unknown }).scheme === "string") {
    // A vscode.Uri; its toString() is the URI string.
    uri = String(first);
  }
  return { uri, range: isLspRange(second) ? second : undefined };
}

/** `wren.server.fix` / `wren.server.generate` result. */
export interface EditResult {
  edit: unknown | null;
  verified: boolean;
  reason: string;
  rounds: number;
  title: string;
}

export function parseEditResult(raw: unknown): EditResult | undefined {
  if (typeof raw !== "object" || raw === null) {
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  return {
    edit: typeof r.edit === "object" ? r.edit : null,
    verified: r.verified === true,
    reason: typeof r.reason === "string" ? r.reason : "",
    rounds: typeof r.rounds === "number" ? r.rounds : 0,
    title: typeof r.title === "string" && r.title ? r.title : "Wren",
  };
}

/** Whether a WorkspaceEdit (LSP JSON) changes anything. */
export function workspaceEditIsEmpty(edit: unknown): boolean {
  if (typeof edit !== "object" || edit === null) {
    return true;
  }
  const e = edit as { changes?: Record<string, unknown[]>; documentChanges?: unknown[] };
  const fromChanges = Object.values(e.changes ?? {}).some((edits) => Array.isArray(edits) && edits.length > 0);
  const fromDocumentChanges = (e.documentChanges ?? []).some((c) => {
    const edits = (c as { edits?: unknown[] }).edits;
    return !Array.isArray(edits) || edits.length > 0; // file operations count as changes
  });
  return !fromChanges && !fromDocumentChanges;
}

/** The sentence shown with the Apply / Discard choice. */
export function previewMessage(result: EditResult, kind: "fix" | "generate"): string {
  const what = kind === "fix" ? "fix" : "generated code";
  const rounds = result.rounds > 1 ? ` after ${result.rounds} rounds` : "";
  if (result.verified) {
    return `Wren: ${result.title} — ${what} checked${rounds}. Apply it?`;
  }
  const reason = result.reason ? ` (${result.reason})` : "";
  return `Wren: ${result.title} — the ${what} could not be verified${reason}. Apply it anyway?`;
}

/** The sentence shown when there is nothing to apply. */
export function noEditMessage(result: EditResult, kind: "fix" | "generate"): string {
  const reason = (result.reason || "the model produced no usable change").replace(/[.\s]+$/, "");
  return kind === "fix" ? `Wren found no fix: ${reason}.` : `Wren generated nothing: ${reason}.`;
}

/** The result of `wren.server.explain`. */
export function parseExplainResult(raw: unknown): { markdown: string } | undefined {
  if (typeof raw !== "object" || raw === null) {
    return undefined;
  }
  const markdown = (raw as { markdown?: unknown }).markdown;
  return typeof markdown === "string" ? { markdown } : undefined;
}
