// The server logs to stderr with Python's logging format ("2026-01-02 10:11:12,345 INFO wren.x: ...").
// Forward each line to the LogOutputChannel at its own level, without the duplicate timestamp,
// instead of marking every stderr line as an error.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

const LEVELS: Record<string, LogLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  WARN: "warn",
  ERROR: "error",
  CRITICAL: "error",
  FATAL: "error",
};

const LINE = /^(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\s+)?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b[:\s]\s*(.*)$/;

/** Turns stderr lines into (level, message); lines without a level (tracebacks) keep the last one. */
export class ServerLogParser {
  private last: LogLevel = "info";

  parse(line: string): { level: LogLevel; message: string } {
    const m = LINE.exec(line);
    if (m) {
      this.last = LEVELS[m[1]];
      return { level: this.last, message: m[2] };
    }
    return { level: this.last, message: line };
  }
}
