// Untrusted markdown (model output) -> HTML for a webview with scripts off.
// Defence in depth: markdown-it with raw HTML off, only http(s) links, no images, and a
// Content-Security-Policy that allows nothing but inline styles.
import MarkdownIt from "markdown-it";

const md = new MarkdownIt({ html: false, linkify: false, typographer: false });
md.disable(["image"]);
md.validateLink = (url: string): boolean => /^https?:\/\//i.test(url.trim());

/** Markdown -> HTML fragment. Raw HTML in the input comes out escaped. */
export function renderMarkdown(markdown: string): string {
  return md.render(markdown);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline';";

/** A whole webview document: title, an optional status line, and the rendered markdown. */
export function renderPage(opts: { title: string; markdown: string; status?: string }): string {
  const status = opts.status
    ? `<p class="wren-status" role="status">${escapeHtml(opts.status)}</p>`
    : "";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeHtml(opts.title)}</title>
<style>
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); line-height: 1.5; padding: 0 16px 16px; }
  pre { background: var(--vscode-textCodeBlock-background); padding: 8px 12px; overflow-x: auto; border-radius: 4px; }
  code { font-family: var(--vscode-editor-font-family); font-size: var(--vscode-editor-font-size); }
  :not(pre) > code { background: var(--vscode-textCodeBlock-background); padding: 1px 4px; border-radius: 3px; }
  table { border-collapse: collapse; margin: 8px 0; }
  th, td { border: 1px solid var(--vscode-panel-border, #8884); padding: 2px 8px; text-align: left; }
  a { color: var(--vscode-textLink-foreground); }
  .wren-status { color: var(--vscode-descriptionForeground); font-style: italic; }
</style>
</head>
<body>
${status}
<main id="wren-content">
${renderMarkdown(opts.markdown)}
</main>
</body>
</html>
`;
}
