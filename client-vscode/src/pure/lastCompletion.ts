// Renders the `wren/lastCompletion` answer (docs/protocol.md) as markdown for
// `Wren: Why No Completion?`. Model output is untrusted text: it only ever goes into code fences.

export interface LastCompletion {
  uri?: string;
  position?: { line: number; character: number };
  /** Some server versions send the position flat. */
  line?: number;
  character?: number;
  version?: number;
  decision?: string;
  mode?: string;
  reason?: string;
  prompt_tokens?: number;
  cached_tokens?: number;
  timings_ms?: Record<string, number>;
  raw_output?: string;
  completion?: string;
  removed?: string[];
  context?: string[];
  // Optional extras (shown when present).
  generated_tokens?: number;
  stop_reason?: string;
  source?: string;
  decode_tokens_per_s?: number;
  drafted_tokens?: number;
  accepted_tokens?: number;
  candidates?: { text?: string; source?: string; joint?: number }[];
  model?: { model?: string; device?: string };
}

const DECISION_TEXT: Record<string, string> = {
  complete: "A completion was offered.",
  skip: "Wren decided not to complete here.",
  cancelled: "The request was cancelled (you kept typing, or a newer request replaced it).",
  error: "The completion failed.",
  "not-ready": "The model was not loaded yet.",
  disabled: "Completions are turned off for this language (wren.enable).",
};

/** A code fence longer than any run of backticks in `text`, so the text cannot close it. */
export function fenced(text: string, lang = ""): string {
  const longest = Math.max(0, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${text}\n${fence}`;
}

/** Escapes text for inline use in markdown (one line; no HTML, no links, no emphasis). */
export function escapeInline(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").replace(/[\\`*_{}[\]()#+\-.!|<>&~]/g, (c) => `\\${c}`);
}

function num(x: unknown): string {
  return typeof x === "number" && Number.isFinite(x) ? String(x) : "—";
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

/** The markdown report. `details` null means the server saw no completion request for the file. */
export function renderLastCompletion(details: LastCompletion | null | undefined, fileLabel: string): string {
  const lines: string[] = [`# Why no completion?`, ""];
  if (!details) {
    lines.push(
      `Wren has not seen a completion request for ${escapeInline(fileLabel)} yet.`,
      "",
      "Type in the file (or press Alt+\\\\ to ask for one), then run this command again.",
    );
    return lines.join("\n");
  }
  const decision = details.decision ?? "unknown";
  lines.push(`**Decision:** \`${escapeInline(decision)}\` — ${DECISION_TEXT[decision] ?? ""}`, "");
  if (details.reason) {
    lines.push(`**Reason:** ${escapeInline(details.reason)}`, "");
  }
  const position = details.position ?? (typeof details.line === "number" ? { line: details.line, character: details.character ?? 0 } : undefined);
  const pos = position ? `line ${position.line + 1}, column ${position.character + 1}` : "—";
  const model = [details.model?.model, details.model?.device].filter(Boolean).join(" on ");
  lines.push(
    "| | |",
    "|---|---|",
    `| File | ${escapeInline(fileLabel)} |`,
    `| Position | ${pos} |`,
    `| Document version | ${num(details.version)} |`,
    `| Mode | ${escapeInline(details.mode ?? "—")} |`,
    `| Prompt tokens | ${num(details.prompt_tokens)} |`,
    `| Reused from cache | ${num(details.cached_tokens)} tokens |`,
  );
  const extras: [string, unknown][] = [
    ["Generated tokens", details.generated_tokens],
    ["Stopped because", details.stop_reason],
    ["Answered from", details.source],
    ["Decode speed", typeof details.decode_tokens_per_s === "number" && details.decode_tokens_per_s > 0 ? `${details.decode_tokens_per_s.toFixed(1)} tokens/s` : undefined],
    ["Draft tokens accepted", details.drafted_tokens ? `${num(details.accepted_tokens)} of ${num(details.drafted_tokens)}` : undefined],
    ["Model", model || undefined],
  ];
  for (const [label, value] of extras) {
    if ((typeof value === "string" && value) || typeof value === "number") {
      lines.push(`| ${label} | ${escapeInline(String(value))} |`);
    }
  }
  lines.push("");
  // Stages can nest (generate = prefill + decode), so no sum.
  const timings = Object.entries(details.timings_ms ?? {}).filter(([, v]) => typeof v === "number");
  if (timings.length) {
    lines.push("## Timings", "", "| Stage | ms |", "|---|---:|");
    for (const [stage, value] of timings) {
      lines.push(`| ${escapeInline(stage)} | ${ms(value)} |`);
    }
    lines.push("");
  }
  lines.push("## Raw model output", "");
  lines.push(details.raw_output ? fenced(details.raw_output) : "_(none)_", "");
  lines.push("## Completion shown", "");
  if (details.completion) {
    // Leading/trailing whitespace decides where ghost text lands: show the exact string too.
    lines.push(fenced(details.completion), "", "Exact text:", "", fenced(JSON.stringify(details.completion), "json"), "");
  } else {
    lines.push("_(none)_", "");
  }
  const removed = details.removed ?? [];
  lines.push("## Removed by post-processing", "");
  if (removed.length) {
    for (const r of removed) {
      lines.push(fenced(r), "");
    }
  } else {
    lines.push("_(nothing)_", "");
  }
  const candidates = (details.candidates ?? []).filter((c) => typeof c?.text === "string");
  if (candidates.length) {
    lines.push("## Candidates (reranked)", "");
    for (const c of candidates) {
      const score = typeof c.joint === "number" ? ` — joint log-probability ${c.joint}` : "";
      lines.push(`${escapeInline(c.source ?? "candidate")}${score}`, "", fenced(c.text ?? ""), "");
    }
  }
  const context = details.context ?? [];
  lines.push("## Context used", "");
  if (context.length) {
    for (const c of context) {
      lines.push(`- ${escapeInline(c)}`);
    }
  } else {
    lines.push("_(only the code around the cursor)_");
  }
  return lines.join("\n") + "\n";
}
