// Applying text edits to a string, for the diff preview of Fix / Generate: the preview shows the
// document exactly as it would be after `workspace.applyEdit`, without touching the document.

export interface OffsetEdit {
  start: number;
  end: number;
  newText: string;
}

/**
 * Applies non-overlapping edits given as offsets into `text`. Edits at the same offset are applied
 * in the order given (as LSP specifies for inserts at one position). Throws on overlap.
 */
export function applyOffsetEdits(text: string, edits: readonly OffsetEdit[]): string {
  const ordered = edits
    .map((e, i) => ({ ...e, i }))
    .sort((a, b) => a.start - b.start || a.end - b.end || a.i - b.i);
  let out = "";
  let cursor = 0;
  for (const e of ordered) {
    if (e.start < cursor || e.end < e.start || e.end > text.length) {
      throw new Error(`Overlapping or invalid edit at offsets ${e.start}..${e.end}.`);
    }
    out += text.slice(cursor, e.start) + e.newText;
    cursor = e.end;
  }
  return out + text.slice(cursor);
}

/** A short human summary of what an edit changes, e.g. "+12 −3 lines". */
export function lineDelta(before: string, after: string): { added: number; removed: number } {
  const a = before.split("\n");
  const b = after.split("\n");
  // Longest common subsequence on lines; documents here are editor-sized.
  const n = a.length;
  const m = b.length;
  if (n * m > 4_000_000) {
    return { added: Math.max(0, m - n), removed: Math.max(0, n - m) };
  }
  let prev = new Array<number>(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    const cur = new Array<number>(m + 1).fill(0);
    for (let j = 1; j <= m; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    prev = cur;
  }
  const common = prev[m];
  return { added: m - common, removed: n - common };
}
