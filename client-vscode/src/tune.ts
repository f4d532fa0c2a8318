// Wren: Tune on This Workspace. Runs `<python> -P -m wren tune <folder>` as a VS Code task, so the
// terminal shows its rich progress and summary, and mirrors the progress (tokens, loss, time
// left) in a cancellable notification. Cancel stops the process; the CLI writes the adapter
// atomically, so nothing half-written stays. Never in Restricted Mode: tuning reads the
// workspace's files with Wren's interpreter, and the trust decision is the user's.
import { promises as fs } from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import { findInterpreter, launchCwd } from "./python";
import type { WrenServer } from "./server";

interface TuneProgressFile {
  phase?: string;
  tokens?: number;
  loss?: number | null;
  seconds_left?: number;
}

const PHASES: Record<string, string> = {
  loading: "loading the model",
  scoring: "scoring held-out files",
  training: "training",
  writing: "writing the adapter",
};

export function describeTuneProgress(p: TuneProgressFile): string {
  const parts = [PHASES[p.phase ?? ""] ?? p.phase ?? "starting"];
  if (p.tokens) {
    parts.push(`${p.tokens.toLocaleString()} tokens`);
  }
  if (typeof p.loss === "number") {
    parts.push(`loss ${p.loss.toFixed(3)}`);
  }
  if (typeof p.seconds_left === "number") {
    parts.push(`~${Math.ceil(p.seconds_left / 60)} min left`);
  }
  return parts.join(" · ");
}

async function pickFolder(): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file");
  if (folders.length <= 1) {
    return folders[0];
  }
  return vscode.window.showWorkspaceFolderPick({ placeHolder: "Tune Wren's model on which folder?" });
}

export async function tuneWorkspace(
  context: vscode.ExtensionContext,
  server: WrenServer,
  log: vscode.LogOutputChannel,
): Promise<void> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showWarningMessage(
      "Wren does not tune on a workspace in Restricted Mode. Trust the workspace first.",
    );
    return;
  }
  const folder = await pickFolder();
  if (!folder) {
    void vscode.window.showWarningMessage("Wren: open a local folder to tune on.");
    return;
  }
  const minutes = await vscode.window.showInputBox({
    title: `Wren: Tune on ${folder.name}`,
    prompt: "Minutes to spend (the CPU is busy meanwhile; completions keep working, slower)",
    value: "10",
    validateInput: (v) => (/^\d+(\.\d+)?$/.test(v.trim()) && Number(v) > 0 ? undefined : "A number of minutes, > 0"),
  });
  if (minutes === undefined) {
    return;
  }
  const interpreter = server.interpreterInUse ?? (await findInterpreter(context, log));
  const cwd = await launchCwd(context); // never the workspace folder, and -P: run none of its code
  const progressFile = path.join(os.tmpdir(), `wren-tune-${process.pid}-${Date.now()}.json`);
  const args = ["-P", "-m", "wren", "tune", folder.uri.fsPath, "--minutes", minutes.trim(), "--progress-json", progressFile];
  log.info(`Tuning: ${interpreter.path} ${args.join(" ")}`);
  const task = new vscode.Task(
    { type: "wren-tune" },
    folder,
    `Tune on ${folder.name}`,
    "Wren",
    new vscode.ProcessExecution(interpreter.path, args, { cwd, env: { PYTHONUNBUFFERED: "1" } }),
  );
  task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, panel: vscode.TaskPanelKind.Dedicated };

  let cancelled = false;
  const exitCode = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Wren: tuning on ${folder.name}`, cancellable: true },
    async (progress, token) => {
      const execution = await vscode.tasks.executeTask(task);
      const timer = setInterval(() => {
        fs.readFile(progressFile, "utf8").then(
          (text) => progress.report({ message: describeTuneProgress(JSON.parse(text) as TuneProgressFile) }),
          () => undefined,
        );
      }, 2000);
      try {
        return await new Promise<number | undefined>((resolve) => {
          const ended = vscode.tasks.onDidEndTaskProcess((e) => {
            if (e.execution === execution) {
              ended.dispose();
              onCancel.dispose();
              resolve(e.exitCode);
            }
          });
          const onCancel = token.onCancellationRequested(() => {
            cancelled = true;
            execution.terminate();
          });
        });
      } finally {
        clearInterval(timer);
        void fs.rm(progressFile, { force: true });
      }
    },
  );
  if (cancelled) {
    void vscode.window.showInformationMessage("Wren: tuning cancelled; no adapter was written.");
  } else if (exitCode === 0) {
    // The server picks up the workspace's adapter (wren.model.adapter = auto) when it loads.
    void vscode.window.showInformationMessage(
      "Wren: tuning finished (the terminal shows the summary). Reloading the model.",
    );
    await server.restart("a tuned adapter was written");
  } else {
    void vscode.window.showErrorMessage(`Wren: tuning failed (exit ${exitCode ?? "?"}); the terminal says why.`);
  }
}
