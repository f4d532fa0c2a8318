// How the client runs Python: the arguments and the working directory. No `vscode` import.
//
// Opening a folder must never run its code, trusted or not. `python -m ...` and `python -c ...`
// put the working directory first on sys.path, so a workspace holding `typer.py`, `rich/`, or a
// `wren/` package would be imported by the server (or the probe) instead of the real module.
// Two rules, both needed:
//   1. `-P` (safe path, Python 3.11+, which Wren requires): the working directory is not added
//      to sys.path. Not `-I`: it also implies `-s` (drops the user site, where a
//      `pip install --user` Wren lives) and `-E` (drops PYTHONUNBUFFERED/PYTHONIOENCODING,
//      which we set, and a user's PYTHONPATH).
//   2. A neutral working directory, never a workspace folder: an empty entry in the user's
//      PYTHONPATH (`PYTHONPATH=/a:`) still means "the working directory", even with -P.
// The server drops the working directory from sys.path too (server/wren/__main__.py), but that
// runs too late to stop a planted `wren/` package; these two rules are the real guard.
// tests/lsp/test_workspace_code.py reads SERVER_ARGS from this file: keep it a literal list.
import * as path from "node:path";

/** Python's safe-path flag: do not prepend the working directory (or a script's folder) to sys.path. */
export const SAFE_PATH_FLAG = "-P";

/** `<python> SERVER_ARGS` starts the language server on stdio. */
export const SERVER_ARGS = ["-P", "-m", "wren", "serve"] as const;

/** Arguments of the "can this interpreter serve?" probe: prints `wren.__file__` and the version. */
export const IMPORT_CHECK_ARGS = [
  SAFE_PATH_FLAG,
  "-c",
  "import sys, wren; sys.stdout.write(wren.__file__ + ' ' + sys.version.split()[0])",
] as const;

/** Whether `dir` is `root` or inside it (compared case-insensitively on Windows and macOS). */
export function isInside(dir: string, root: string, platform: NodeJS.Platform): boolean {
  const p = platform === "win32" ? path.win32 : path.posix;
  const fold = (s: string) => (platform === "win32" || platform === "darwin" ? s.toLowerCase() : s);
  const rel = p.relative(fold(p.resolve(root)), fold(p.resolve(dir)));
  return rel === "" || (!rel.startsWith("..") && !p.isAbsolute(rel));
}

/**
 * The working directory for every Python the client starts: the first candidate (the extension's
 * global storage folder, then the temp folder) that is not inside a workspace folder, else the
 * file-system root. Never a workspace folder.
 */
export function neutralCwd(
  candidates: readonly (string | undefined)[],
  workspaceFolders: readonly string[],
  platform: NodeJS.Platform,
): string {
  for (const dir of candidates) {
    if (dir && !workspaceFolders.some((ws) => isInside(dir, ws, platform))) {
      return dir;
    }
  }
  const p = platform === "win32" ? path.win32 : path.posix;
  const someDir = candidates.find((c): c is string => !!c) ?? (platform === "win32" ? "C:\\" : "/");
  return p.parse(p.resolve(someDir)).root;
}

/** A probe's stderr that means the interpreter is older than Python 3.11 (it does not know -P). */
export function isTooOldForSafePath(stderr: string): boolean {
  return /unknown option:? -P\b/i.test(stderr);
}
