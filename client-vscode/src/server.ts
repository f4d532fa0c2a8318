// Starting, stopping and restarting `<python> -m wren serve` behind a LanguageClient.
import * as readline from "node:readline";
import type { Readable } from "node:stream";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  State,
  type LanguageClientOptions,
  type Middleware,
  type ServerOptions,
} from "vscode-languageclient/node";
import manifest from "../package.json";
import { checkWrenImport, findInterpreter, findWrenCheckout, launchCwd } from "./python";
import { debounceFor, delayUnlessCancelled } from "./pure/debounce";
import { describeSource, installCommand, type ResolvedInterpreter } from "./pure/interpreter";
import { isLanguageEnabled, type EnableMap } from "./pure/languages";
import { SERVER_ARGS } from "./pure/launch";
import { buildInitializationOptions, buildServerSettings, schemaKeys, settingsSection, type ConfigurationReader } from "./pure/settings";
import { ServerLogParser } from "./pure/serverLog";
import { parseServerStatus } from "./pure/status";
import type { WrenStatusBar } from "./statusBar";

const SETTING_KEYS = schemaKeys(manifest);

function configurationReader(): ConfigurationReader {
  const config = vscode.workspace.getConfiguration();
  return { get: (k) => config.get(k), inspect: (k) => config.inspect(k) };
}

/** The wren.* settings as the server gets them (trust-filtered, nested). */
export function currentServerSettings(): Record<string, unknown> {
  return buildServerSettings(SETTING_KEYS, configurationReader(), vscode.workspace.isTrusted);
}

function lines(input: Readable, onLine: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", onLine);
}

/** Server stderr -> the Wren channel, each line at the level the server logged it with. */
function forwardServerLog(input: Readable, out: vscode.LogOutputChannel): void {
  const parser = new ServerLogParser();
  lines(input, (line) => {
    const { level, message } = parser.parse(line);
    out[level](message);
  });
}

type Listener = (client: LanguageClient) => vscode.Disposable[];

export class WrenServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private clientDisposables: vscode.Disposable[] = [];
  private readonly listeners: Listener[] = [];
  private queue: Promise<void> = Promise.resolve();
  private interpreter: ResolvedInterpreter | undefined;
  private disposed = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: WrenStatusBar,
  ) {}

  /** The running client, if the server is up. */
  get running(): LanguageClient | undefined {
    return this.client?.state === State.Running ? this.client : undefined;
  }

  get interpreterInUse(): ResolvedInterpreter | undefined {
    return this.interpreter;
  }

  /** Registers per-client hooks (notification handlers); re-run on every restart. */
  addClientListener(listener: Listener): void {
    this.listeners.push(listener);
    if (this.client) {
      this.clientDisposables.push(...listener(this.client));
    }
  }

  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  restart(reason: string): Promise<void> {
    return this.enqueue(async () => {
      this.log.info(`Restarting the Wren server: ${reason}`);
      await this.doStop();
      await this.doStart();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    // Starts and stops run one at a time, in order.
    this.queue = this.queue.then(task, task).catch((err) => {
      this.log.error(`Wren server lifecycle error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    });
    return this.queue;
  }

  private async doStart(): Promise<void> {
    if (this.disposed) {
      return;
    }
    const interpreter = await findInterpreter(this.context, this.log);
    this.interpreter = interpreter;
    this.log.info(`Python: ${interpreter.path} (from ${describeSource(interpreter.source)})`);
    this.status.setClientState({ kind: "starting", interpreter: interpreter.path });

    // Never the workspace folder, and -P: opening a folder must not run its code (pure/launch.ts).
    const cwd = await launchCwd(this.context);
    const check = await checkWrenImport(interpreter.path, cwd);
    if (!check.ok) {
      // Not awaited: the notification stays up until the user answers, and a restart (after
      // fixing the setting) must not wait for that.
      const checkout = await findWrenCheckout(this.context);
      void this.reportNotImportable(interpreter, check.detail, check.missingInterpreter, checkout, cwd);
      return;
    }
    this.log.info(`wren found: ${check.detail}`);

    const serverOptions: ServerOptions = {
      command: interpreter.path,
      args: [...SERVER_ARGS],
      options: {
        cwd,
        env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8" },
      },
    };
    const trusted = vscode.workspace.isTrusted;
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.log,
      traceOutputChannel: this.log,
      revealOutputChannelOn: 4 /* RevealOutputChannelOn.Never */,
      stdioOptions: { stdout: (input, out) => lines(input, (l) => out.info(l)), stderr: forwardServerLog },
      initializationOptions: buildInitializationOptions(SETTING_KEYS, configurationReader(), trusted),
      synchronize: { configurationSection: "wren" },
      middleware: this.middleware(),
    };
    this.log.info(`Starting ${interpreter.path} ${SERVER_ARGS.join(" ")} in ${cwd} (workspaceTrusted: ${trusted})`);
    const client = new LanguageClient("wren", "Wren", serverOptions, clientOptions);
    this.client = client;
    this.clientDisposables.push(
      client.onNotification("wren/status", (raw: unknown) => {
        const parsed = parseServerStatus(raw);
        if (parsed) {
          this.status.setServerStatus(parsed);
        } else {
          this.log.warn(`Ignored a malformed wren/status notification: ${JSON.stringify(raw)}`);
        }
      }),
      client.onDidChangeState((e) => {
        if (e.newState === State.Running) {
          this.status.setClientState({ kind: "running" });
        } else if (e.newState === State.Stopped && this.client === client) {
          this.status.setClientState({ kind: "stopped", message: "the server process exited; see the Wren output." });
        }
      }),
    );
    for (const listener of this.listeners) {
      this.clientDisposables.push(...listener(client));
    }
    try {
      await client.start();
      this.status.setClientState({ kind: "running" });
      // The first wren/status may have been sent before our handler saw it; ask once.
      client.sendRequest("workspace/executeCommand", { command: "wren.server.status", arguments: [] }).then(
        (raw) => {
          const parsed = parseServerStatus(raw);
          if (parsed && this.status.serverStatus === undefined) {
            this.status.setServerStatus(parsed);
          }
        },
        () => undefined,
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.error(`The Wren server failed to start: ${message}`);
      this.status.setClientState({ kind: "failed", message: `the server failed to start (${message}).` });
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.clientDisposables) {
      d.dispose();
    }
    this.clientDisposables = [];
    if (client) {
      try {
        if (client.needsStop()) {
          await client.stop(5000);
        }
      } catch (err) {
        this.log.warn(`Stopping the Wren server: ${String(err)}`);
      }
      await client.dispose(1000).catch(() => undefined);
    }
  }

  /** Sets the error state at once, then offers the fix in a notification. */
  private async reportNotImportable(
    interpreter: ResolvedInterpreter,
    detail: string,
    missing: boolean,
    checkout: string | undefined,
    cwd: string,
  ): Promise<void> {
    const fix = installCommand(interpreter.path, checkout);
    const problem = missing
      ? `Wren could not use the Python interpreter ${interpreter.path} (from ${describeSource(interpreter.source)}): ${detail}`
      : `Wren is not installed in ${interpreter.path} (from ${describeSource(interpreter.source)}): ${detail}`;
    const advice = missing
      ? "Set wren.server.pythonPath to a Python 3.11+ interpreter."
      : `Install it with: ${fix}`;
    this.log.error(`${problem} ${advice}`);
    this.status.setClientState({ kind: "failed", message: `${problem} ${advice}` });
    const actions = missing ? ["Open Settings", "Show Logs"] : ["Run in Terminal", "Copy Command", "Open Settings"];
    const choice = await vscode.window.showErrorMessage(`${problem} ${advice}`, ...actions);
    if (choice === "Run in Terminal") {
      // Not in the workspace folder: `python -m pip` would import a workspace's `pip/` there.
      const terminal = vscode.window.createTerminal({ name: "Install Wren", cwd });
      terminal.show();
      terminal.sendText(fix, true);
      void vscode.window
        .showInformationMessage("When the install finishes, restart the Wren server.", "Restart Server")
        .then((c) => c && vscode.commands.executeCommand("wren.restartServer"));
    } else if (choice === "Copy Command") {
      await vscode.env.clipboard.writeText(fix);
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "wren.server.pythonPath");
    } else if (choice === "Show Logs") {
      this.log.show(true);
    }
  }

  private middleware(): Middleware {
    return {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const wren = vscode.workspace.getConfiguration("wren", document);
        if (!isLanguageEnabled(wren.get<EnableMap>("enable"), document.languageId)) {
          return null;
        }
        const explicit = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
        const waited = await delayUnlessCancelled(debounceFor(wren.get("completion.debounceMs"), explicit), token);
        if (!waited) {
          return null;
        }
        return next(document, position, context, token);
      },
      workspace: {
        // Send the trust-filtered settings instead of the raw section (Restricted Mode must not
        // pass workspace values of restricted settings, and never verify.runCode = true).
        didChangeConfiguration: async (_sections, _next) => {
          const client = this.client;
          if (!client) {
            return;
          }
          await client.sendNotification(DidChangeConfigurationNotification.type, {
            settings: { wren: currentServerSettings() },
          });
        },
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) {
            return result;
          }
          const nested = currentServerSettings();
          return params.items.map((item, i) =>
            item.section === "wren" || item.section?.startsWith("wren.")
              ? settingsSection(nested, item.section)
              : result[i],
          );
        },
      },
    };
  }

  dispose(): void {
    this.disposed = true;
    void this.stop();
  }
}
