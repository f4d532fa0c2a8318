// Drives a real VS Code (code-server) in headless Chromium with playwright-core, as a user would:
// opens a Python file, types, waits for Wren's ghost text, accepts it with Tab, runs
// `Wren: Explain` from the command palette. Called by tests/e2e/test_editor.py.
//
//   node editor_driver.mjs <config.json>
//
// config: { url, folder, file, scenario: "trusted" | "restricted" | ..., restricted (expect
//           Restricted Mode), artifacts, playwright,
//           chromium, typeLines: [..], explainLine, readyTimeoutMs, ghostTimeoutMs, explainTimeoutMs }
// Prints progress to stderr and one JSON result object as the last line of stdout.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const require = createRequire(path.join(config.playwright, "noop.js"));
const { chromium } = require("playwright-core");

const t0 = Date.now();
const result = { scenario: config.scenario, steps: [], errors: [] };
const log = (msg) => {
  const line = `[driver +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`;
  result.steps.push(line);
  process.stderr.write(line + "\n");
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const GHOST = ".ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text";

async function run(page) {
  const url = `${config.url}/?folder=${encodeURIComponent(config.folder)}`;
  log(`open ${url}`);
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(".monaco-workbench", { timeout: 90_000 });
  log("workbench loaded");

  if (config.scenario === "no-wren") {
    await missingWren(page);
    return;
  }

  if (config.restricted) {
    // An untrusted folder opens in Restricted Mode; VS Code may first ask whether to trust it
    // (depending on the version and security.workspace.trust.startupPrompt): answer no.
    const noButton = page
      .locator(".monaco-dialog-box a.monaco-button, .monaco-dialog-box button", { hasText: /don't trust|No, I don/i })
      .first();
    const indicator = page.locator('[aria-label*="Restricted Mode"]').first();
    await noButton.or(indicator).waitFor({ timeout: 60_000 });
    if (await noButton.isVisible()) {
      await noButton.click();
      log("answered the workspace trust dialog: don't trust");
    }
    await indicator.waitFor({ timeout: 30_000 });
    result.restrictedModeIndicator = true;
    log("Restricted Mode indicator visible");
  }

  await openFile(page, config.file);

  // The extension activates on startup, starts the server, which loads the model.
  const ready = page.locator('[aria-label*="Wren is ready"]');
  const statusAny = page.locator('[aria-label*="Wren"]');
  const readyStart = Date.now();
  try {
    await ready.first().waitFor({ timeout: config.readyTimeoutMs, state: "attached" });
  } catch (err) {
    result.statusLabel = await statusAny.first().getAttribute("aria-label").catch(() => null);
    throw new Error(`Wren never reported ready (status: ${result.statusLabel}): ${err.message}`);
  }
  result.readyAfterOpenMs = Date.now() - readyStart;
  result.statusLabel = await ready.first().getAttribute("aria-label");
  log(`status bar: ${result.statusLabel}`);

  // Type at the end of the file like a user, then measure the last keystroke -> ghost text.
  await focusEditorAtEnd(page);
  await installGhostTextProbe(page);
  for (const [i, line] of config.typeLines.entries()) {
    await page.keyboard.press("Enter");
    const last = i === config.typeLines.length - 1;
    const text = last ? line.slice(0, -1) : line;
    await page.keyboard.type(text, { delay: 60 });
    if (last) {
      await page.evaluate(() => window.__wrenProbe.reset());
      await page.keyboard.type(line.slice(-1));
    }
  }
  log(`typed ${JSON.stringify(config.typeLines)}`);
  result.trigger = "automatic";
  let latency = await waitForGhostText(page, config.ghostTimeoutMs);
  if (latency === null) {
    log("no automatic ghost text; asking explicitly with Alt+\\");
    result.trigger = "manual";
    await page.evaluate(() => window.__wrenProbe.reset());
    await page.keyboard.press("Alt+Backslash");
    latency = await waitForGhostText(page, config.ghostTimeoutMs);
  }
  if (latency === null) {
    await page.screenshot({ path: path.join(config.artifacts, `no-ghost-text-${config.scenario}.png`) });
    throw new Error("no ghost text appeared, automatically or with Alt+\\");
  }
  result.ghostLatencyMs = Math.round(latency);
  result.ghostText = await page.evaluate((sel) => {
    // Ghost text is one span per token; spans of one rendered line belong together.
    const lines = new Map();
    for (const el of document.querySelectorAll(sel)) {
      const line = el.closest(".view-line") ?? el.parentElement;
      lines.set(line, (lines.get(line) ?? "") + (el.textContent ?? ""));
    }
    return [...lines.values()].join("\n").replace(/\u00a0/g, " ");
  }, GHOST);
  log(`ghost text after ${result.ghostLatencyMs} ms (${result.trigger}): ${JSON.stringify(result.ghostText)}`);
  await sleep(300);
  const shot = path.join(config.artifacts, `ghost-text${config.scenario === "trusted" ? "" : "-" + config.scenario}.png`);
  // The editor's upper part: the code and the ghost text, small enough for the README.
  const box = await page.locator(".part.editor").first().boundingBox();
  await page.screenshot({ path: shot, clip: { x: box.x, y: box.y, width: Math.min(box.width, 760), height: Math.min(box.height, 420) } });
  result.screenshot = shot;

  result.textBeforeTab = await visibleText(page);
  await page.keyboard.press("Tab");
  await sleep(500);
  result.ghostVisibleAfterTab = await page.evaluate((sel) => !!document.querySelector(sel), GHOST);
  result.textAfterTab = await visibleText(page);
  await page.keyboard.press("Control+S");
  const file = path.join(config.folder, config.file);
  const deadline = Date.now() + 10_000;
  while (readFileSync(file, "utf8") === config.originalText && Date.now() < deadline) {
    await sleep(100);
  }
  result.savedText = readFileSync(file, "utf8");
  log("accepted with Tab and saved");

  if (config.toggle) {
    await toggleViaStatusBar(page);
  }
  if (config.explainLine) {
    await whyNoCompletion(page);
    await explain(page);
  }
  if (config.generate) {
    await generateFromComment(page);
    await cancelFix(page);
  }
}

async function openFile(page, file) {
  // Quick Open (Ctrl+P) is what a user would do; it also works in Restricted Mode.
  await page.locator(".monaco-workbench").click({ position: { x: 600, y: 300 } }).catch(() => undefined);
  for (let attempt = 0; attempt < 3; attempt++) {
    await page.keyboard.press("Control+P");
    const input = page.locator(".quick-input-widget input");
    try {
      await input.waitFor({ timeout: 10_000 });
    } catch {
      continue;
    }
    await input.fill(file);
    await page.locator(".quick-input-list .monaco-list-row", { hasText: file }).first().waitFor({ timeout: 15_000 });
    await page.keyboard.press("Enter");
    await page.locator(`.tab[aria-label*="${file}"]`).first().waitFor({ timeout: 15_000 });
    await page.locator(".monaco-editor .view-lines").first().waitFor({ timeout: 15_000 });
    log(`opened ${file}`);
    return;
  }
  throw new Error(`could not open ${file} with Quick Open`);
}

async function focusEditorAtEnd(page) {
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
}

async function installGhostTextProbe(page) {
  // Timestamps taken inside the page: the last keydown and the first frame with ghost text.
  await page.evaluate((sel) => {
    const probe = { keyAt: null, ghostAt: null };
    probe.reset = () => {
      probe.keyAt = null;
      probe.ghostAt = null;
    };
    window.addEventListener("keydown", () => { probe.keyAt = performance.now(); probe.ghostAt = null; }, true);
    const check = () => {
      if (probe.keyAt !== null && probe.ghostAt === null) {
        const el = [...document.querySelectorAll(sel)].find((e) => (e.textContent ?? "").trim().length > 0);
        if (el) {
          probe.ghostAt = performance.now();
        }
      }
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
    window.__wrenProbe = probe;
  }, GHOST);
}

async function waitForGhostText(page, timeoutMs) {
  try {
    await page.waitForFunction(() => window.__wrenProbe.ghostAt !== null, null, { timeout: timeoutMs, polling: 50 });
  } catch {
    return null;
  }
  return page.evaluate(() => window.__wrenProbe.ghostAt - window.__wrenProbe.keyAt);
}

async function visibleText(page) {
  // The editor's rendered lines, top to bottom (the sample file fits on screen).
  return page.evaluate(() => {
    const lines = [...document.querySelectorAll(".part.editor .monaco-editor .view-lines .view-line")];
    lines.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
    return lines.map((l) => (l.textContent ?? "").replace(/\u00a0/g, " ")).join("\n");
  });
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ timeout: 10_000 });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ timeout: 15_000 });
  await page.keyboard.press("Enter");
}

/** Click the status bar item: completions off (no ghost text while typing), click again: back on. */
async function toggleViaStatusBar(page) {
  await page.locator('[aria-label*="Wren is ready"]').first().click();
  const off = page.locator('[aria-label*="Wren completions are off"]').first();
  await off.waitFor({ timeout: 15_000, state: "attached" });
  result.offLabel = await off.getAttribute("aria-label");
  log(`status bar after a click: ${result.offLabel}`);
  await focusEditorAtEnd(page);
  await page.evaluate(() => window.__wrenProbe.reset());
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
  await page.keyboard.type("def square_area(side: float) -> float:", { delay: 20 });
  await page.keyboard.press("Enter");
  await page.keyboard.type("return ", { delay: 20 });
  result.ghostWhileOff = (await waitForGhostText(page, 6000)) !== null;
  log(`ghost text while off: ${result.ghostWhileOff}`);
  await page.locator('[aria-label*="Wren completions are off"]').first().click();
  await page.locator('[aria-label*="Wren is ready"]').first().waitFor({ timeout: 15_000, state: "attached" });
  result.backOn = true;
  log("clicked again: completions back on");
}

/**
 * `Wren: Generate from Comment` at the end of a file that ends with a comment: the proposal opens
 * as a diff with an Apply / Discard notification; Apply writes it into the document.
 */
async function generateFromComment(page) {
  const { file, timeoutMs } = config.generate;
  await openFile(page, file);
  await focusEditorAtEnd(page);
  const started = Date.now();
  await runCommand(page, "Wren: Generate from Comment");
  log("ran Wren: Generate from Comment");
  const toasts = page.locator(".notifications-toasts");
  const apply = toasts.locator("a.monaco-button, button", { hasText: /^Apply$/ }).first();
  const nothing = toasts.locator(".notification-list-item-message", { hasText: /Wren (generated nothing|found no)/ }).first();
  await apply.or(nothing).waitFor({ timeout: timeoutMs });
  result.generateMs = Date.now() - started;
  if (await nothing.isVisible()) {
    result.generateOutcome = "nothing";
    result.generateMessage = await nothing.innerText();
    log(`generate: no edit: ${result.generateMessage}`);
    return;
  }
  result.generateOutcome = "preview";
  result.generateMessage = await toasts.locator(".notification-list-item-message", { hasText: /Apply it/ }).first().innerText();
  result.generateDiffTab = await page.locator('.tab[aria-label*="proposed"]').first().getAttribute("aria-label").catch(() => null);
  result.generateOriginalOnDisk = readFileSync(path.join(config.folder, file), "utf8");
  log(`generate: preview after ${result.generateMs} ms: ${result.generateMessage} [${result.generateDiffTab}]`);
  await page.screenshot({ path: path.join(config.artifacts, "generate-diff.png") });
  // Nothing is written while the preview is open.
  result.unchangedWhilePreviewing = readFileSync(path.join(config.folder, file), "utf8") === result.generateOriginalOnDisk;
  await apply.click();
  await page.locator('.tab[aria-label*="proposed"]').first().waitFor({ state: "detached", timeout: 15_000 });
  await openFile(page, file);
  await page.keyboard.press("Control+S");
  const deadline = Date.now() + 10_000;
  while (readFileSync(path.join(config.folder, file), "utf8") === result.generateOriginalOnDisk && Date.now() < deadline) {
    await sleep(100);
  }
  result.generateSavedText = readFileSync(path.join(config.folder, file), "utf8");
  log(`generate: applied and saved (${result.generateSavedText.length} chars)`);
}

/** `Wren: Fix`, cancelled from its progress notification at once: no preview, nothing written. */
async function cancelFix(page) {
  const file = config.file;
  await openFile(page, file);
  const before = readFileSync(path.join(config.folder, file), "utf8");
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+G");
  await page.keyboard.type(String(config.explainLine.start + 1));
  await page.keyboard.press("Enter");
  await runCommand(page, "Wren: Fix");
  const toasts = page.locator(".notifications-toasts");
  const cancel = toasts.locator("a.monaco-button, button", { hasText: /^Cancel$/ }).first();
  await cancel.waitFor({ timeout: 15_000 });
  await cancel.click();
  log("ran Wren: Fix and cancelled it");
  // Give a late answer time to arrive: it must be dropped.
  await sleep(8000);
  result.cancelShowedPreview =
    (await page.locator('.tab[aria-label*="proposed"]').count()) > 0 ||
    (await toasts.locator("a.monaco-button, button", { hasText: /^Apply$/ }).count()) > 0;
  result.cancelLeftFileUnchanged = readFileSync(path.join(config.folder, file), "utf8") === before;
  result.cancelLeftEditorClean = (await page.locator(`.tab.dirty[aria-label*="${file}"]`).count()) === 0;
  log(`after cancel: preview shown ${result.cancelShowedPreview}, file unchanged ${result.cancelLeftFileUnchanged}`);
}

/** wren.server.pythonPath points at a Python without Wren: say so, with the command that fixes it. */
async function missingWren(page) {
  const message = page.locator(".notifications-toasts .notification-list-item-message", { hasText: /Wren is not installed in/ }).first();
  await message.waitFor({ timeout: 60_000 });
  result.notification = await message.innerText();
  result.notificationButtons = await page
    .locator(".notifications-toasts .notification-list-item-buttons-container a.monaco-button, .notifications-toasts .notification-list-item-buttons-container button")
    .allInnerTexts();
  log(`notification: ${result.notification} [${result.notificationButtons.join(", ")}]`);
  const status = page.locator('[aria-label*="Wren could not start"]').first();
  await status.waitFor({ timeout: 15_000, state: "attached" });
  result.statusLabel = await status.getAttribute("aria-label");
  // Clear the first notification, then click the status bar item: it shows the reason again.
  await page.locator(".notifications-toasts .codicon-notifications-clear").first().click().catch(() => undefined);
  await page.keyboard.press("Escape");
  await status.click();
  const again = page.locator(".notifications-toasts .notification-list-item-message", { hasText: /Wren is not installed in/ }).first();
  await again.waitFor({ timeout: 15_000 });
  result.statusClickShowedReason = true;
  log(`status bar: ${result.statusLabel}; click showed the reason`);
}

/** Polls every frame (webviews are nested iframes) for a Wren panel whose title starts with `titlePrefix`. */
async function readPanel(page, titlePrefix) {
  for (const frame of page.frames()) {
    const found = await frame
      .evaluate((prefix) => {
        const main = document.querySelector("#wren-content");
        if (!main || !document.title.startsWith(prefix)) {
          return null;
        }
        const st = document.querySelector(".wren-status");
        return { text: main.innerText.trim(), status: st ? st.textContent : null, title: document.title };
      }, titlePrefix)
      .catch(() => null);
    if (found) {
      return found;
    }
  }
  return null;
}

async function whyNoCompletion(page) {
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
  await runCommand(page, "Wren: Why No Completion?");
  log("ran Wren: Why No Completion?");
  const started = Date.now();
  let found = null;
  while (Date.now() - started < 30_000) {
    found = await readPanel(page, "Why no completion?");
    if (found?.text) {
      break;
    }
    await sleep(250);
  }
  result.whyNoCompletionText = found?.text ?? "";
  log(`completion details: ${JSON.stringify(result.whyNoCompletionText.slice(0, 300))}`);
}

async function explain(page) {
  // Select the function to explain: Ctrl+G to its first line, then Shift+Down over its body.
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+G");
  await page.keyboard.type(String(config.explainLine.start));
  await page.keyboard.press("Enter");
  await page.keyboard.press("Home");
  for (let i = config.explainLine.start; i <= config.explainLine.end; i++) {
    await page.keyboard.press("Shift+ArrowDown");
  }
  await runCommand(page, "Wren: Explain");
  const started = Date.now();
  log("ran Wren: Explain");
  let text = "";
  let status = null;
  let firstTextMs = null;
  while (Date.now() - started < config.explainTimeoutMs) {
    const found = await readPanel(page, "Explain ");
    if (found) {
      text = found.text;
      status = found.status;
      result.explainPanelTitle = found.title;
    }
    if (text && firstTextMs === null) {
      firstTextMs = Date.now() - started;
      log(`explanation text appeared after ${firstTextMs} ms`);
    }
    const streaming = status && (status.startsWith("Explaining") || status.startsWith("Draft"));
    if ((text && status === null) || (status && !streaming)) {
      break; // done (the checked answer replaced the draft's status line), failed or cancelled
    }
    await sleep(250);
  }
  result.explainText = text;
  result.explainStatus = status;
  result.explainFirstTextMs = firstTextMs;
  result.explainDoneMs = status === null && text ? Date.now() - started : null;
  await page.screenshot({ path: path.join(config.artifacts, "explain.png") });
  log(`explanation (${text.length} chars, status ${JSON.stringify(status)}): ${JSON.stringify(text.slice(0, 200))}`);
}

const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => result.errors.push(`pageerror: ${err.message}`));
  try {
    await run(page);
  } catch (err) {
    exitCode = 1;
    result.failure = err instanceof Error ? err.message : String(err);
    log(`FAILED: ${result.failure}`);
    await page.screenshot({ path: path.join(config.artifacts, `failure-${config.scenario}.png`) }).catch(() => undefined);
  }
} finally {
  await browser.close();
}
result.totalMs = Date.now() - t0;
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(exitCode);
