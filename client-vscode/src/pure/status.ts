// What the status bar item shows for each state. No `vscode` import: statusBar.ts applies it.

/** `wren/status` notification params (docs/protocol.md). */
export interface ServerStatus {
  state: "loading" | "ready" | "generating" | "error" | "disabled";
  model?: string;
  device?: string;
  message?: string;
  progress?: number | null;
  /** The `wren tune` adapter the model is served with, described; empty or absent: none. */
  adapter?: string;
}

/** Client-side states that exist before or without a server. */
export type ClientState =
  | { kind: "starting"; interpreter?: string }
  | { kind: "running" }
  | { kind: "stopped"; message: string }
  | { kind: "failed"; message: string };

export interface StatusInputs {
  client: ClientState;
  server?: ServerStatus;
  /** `wren.enable["*"]`. */
  globallyEnabled: boolean;
  /** Enabled for the active editor's language (undefined: no active editor). */
  languageEnabled?: boolean;
  languageId?: string;
}

export interface StatusView {
  /** Text with codicons, e.g. `$(loading~spin) Wren 40%`. */
  text: string;
  /** Markdown-free plain tooltip. */
  tooltip: string;
  /** Which theme colour the background uses. */
  severity: "normal" | "warning" | "error";
  /** What a click does. */
  command: "wren.toggleCompletions" | "wren.showStatus";
  /** The error to show when clicked (error states only). */
  errorMessage?: string;
}

const NAME = "Wren";

function modelLabel(s: ServerStatus): string {
  const model = s.model && s.adapter ? `${s.model} + tuned adapter` : s.model;
  const parts = [model, s.device].filter((x): x is string => !!x && x.length > 0);
  return parts.length ? parts.join(" on ") : "model";
}

/** The one function that decides what the status bar says. */
export function renderStatus(inputs: StatusInputs): StatusView {
  const { client, server } = inputs;
  const clickToggle = inputs.globallyEnabled
    ? "Click to turn completions off."
    : "Click to turn completions on.";

  if (client.kind === "failed") {
    return {
      text: `$(error) ${NAME}`,
      tooltip: `Wren could not start: ${client.message}\nClick for details.`,
      severity: "error",
      command: "wren.showStatus",
      errorMessage: client.message,
    };
  }
  if (client.kind === "stopped") {
    return {
      text: `$(debug-disconnect) ${NAME}`,
      tooltip: `Wren's server stopped: ${client.message}\nClick for details.`,
      severity: "error",
      command: "wren.showStatus",
      errorMessage: client.message,
    };
  }
  if (server?.state === "error") {
    const message = server.message || "The Wren server reported an error.";
    return {
      text: `$(error) ${NAME}`,
      tooltip: `${message}\nClick for details.`,
      severity: "error",
      command: "wren.showStatus",
      errorMessage: message,
    };
  }
  if (!inputs.globallyEnabled || server?.state === "disabled") {
    return {
      text: `$(circle-slash) ${NAME}`,
      tooltip: `Wren completions are off. ${clickToggle}`,
      severity: "warning",
      command: "wren.toggleCompletions",
    };
  }
  if (inputs.languageEnabled === false) {
    return {
      text: `$(circle-slash) ${NAME}`,
      tooltip: `Wren completions are off for ${inputs.languageId ?? "this language"} (wren.enable). ${clickToggle}`,
      severity: "normal",
      command: "wren.toggleCompletions",
    };
  }
  if (client.kind === "starting" || server === undefined) {
    return {
      text: `$(loading~spin) ${NAME}`,
      tooltip: client.kind === "starting" && client.interpreter
        ? `Starting the Wren server with ${client.interpreter}…`
        : "Starting the Wren server…",
      severity: "normal",
      command: "wren.toggleCompletions",
    };
  }
  switch (server.state) {
    case "loading": {
      const pct = typeof server.progress === "number" ? ` ${Math.max(0, Math.min(100, Math.round(server.progress)))}%` : "";
      const what = server.message || `Loading ${server.model || "the model"}…`;
      return {
        text: `$(loading~spin) ${NAME}${pct}`,
        tooltip: `${what}\nCompletions start when the model is ready.`,
        severity: "normal",
        command: "wren.toggleCompletions",
      };
    }
    case "generating":
      return {
        text: `$(sync~spin) ${NAME}`,
        tooltip: `Generating with ${modelLabel(server)}… ${clickToggle}`,
        severity: "normal",
        command: "wren.toggleCompletions",
      };
    case "ready":
    default:
      return {
        text: `$(check) ${NAME}`,
        tooltip: `Wren is ready: ${modelLabel(server)}. ${clickToggle}`,
        severity: "normal",
        command: "wren.toggleCompletions",
      };
  }
}

/** Accepts a `wren/status` payload only if it has a known state (the server is someone else's code). */
export function parseServerStatus(raw: unknown): ServerStatus | undefined {
  if (typeof raw !== "object" || raw === null) {
    return undefined;
  }
  const r = raw as Record<string, unknown>;
  const states = ["loading", "ready", "generating", "error", "disabled"];
  if (typeof r.state !== "string" || !states.includes(r.state)) {
    return undefined;
  }
  return {
    state: r.state as ServerStatus["state"],
    model: typeof r.model === "string" ? r.model : undefined,
    device: typeof r.device === "string" ? r.device : undefined,
    message: typeof r.message === "string" ? r.message : undefined,
    progress: typeof r.progress === "number" ? r.progress : null,
    ...(typeof r.adapter === "string" && r.adapter ? { adapter: r.adapter } : {}),
  };
}

/**
 * True when the model has just become able to answer: a request typed while it was loading was
 * answered empty, so the client asks for the inline suggestion again at the cursor. "generating"
 * counts as ready (the model is loaded); a repeated "ready" does not re-trigger.
 */
export function becameReady(previous: ServerStatus | undefined, next: ServerStatus): boolean {
  const answering = (s: ServerStatus | undefined): boolean => s?.state === "ready" || s?.state === "generating";
  return answering(next) && !answering(previous);
}
