import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  noEditMessage,
  parseEditResult,
  parseTargetArgs,
  previewMessage,
  workspaceEditIsEmpty,
} from "../src/pure/commands";
import { debounceFor, delayUnlessCancelled, type CancellationLike } from "../src/pure/debounce";
import { applyOffsetEdits, lineDelta } from "../src/pure/textEdits";

class Token implements CancellationLike {
  isCancellationRequested = false;
  private listeners: (() => unknown)[] = [];
  onCancellationRequested(l: () => unknown) {
    this.listeners.push(l);
    return { dispose: () => (this.listeners = this.listeners.filter((x) => x !== l)) };
  }
  cancel() {
    this.isCancellationRequested = true;
    for (const l of [...this.listeners]) {
      l();
    }
  }
  get listenerCount() {
    return this.listeners.length;
  }
}

describe("debounce", () => {
  it("waits, then resolves true", async () => {
    const t = new Token();
    const start = Date.now();
    assert.equal(await delayUnlessCancelled(60, t), true);
    assert.ok(Date.now() - start >= 55);
    assert.equal(t.listenerCount, 0, "listener disposed");
  });

  it("resolves false at once when cancelled", async () => {
    const t = new Token();
    const start = Date.now();
    const p = delayUnlessCancelled(10_000, t);
    setTimeout(() => t.cancel(), 20);
    assert.equal(await p, false);
    assert.ok(Date.now() - start < 1000);
  });

  it("an already cancelled token never waits", async () => {
    const t = new Token();
    t.cancel();
    assert.equal(await delayUnlessCancelled(10_000, t), false);
  });

  it("no debounce for an explicit trigger; bad settings mean none", () => {
    assert.equal(debounceFor(120, true), 0);
    assert.equal(debounceFor(120, false), 120);
    assert.equal(debounceFor("120", false), 0);
    assert.equal(debounceFor(-5, false), 0);
    assert.equal(debounceFor(60_000, false), 5000);
  });
});

describe("text edits", () => {
  it("applies edits in any order", () => {
    const text = "def f():\n    pass\n";
    const out = applyOffsetEdits(text, [
      { start: 13, end: 17, newText: "return 1" },
      { start: 0, end: 0, newText: "# fixed\n" },
    ]);
    assert.equal(out, "# fixed\ndef f():\n    return 1\n");
  });

  it("keeps inserts at one offset in order", () => {
    assert.equal(applyOffsetEdits("ab", [{ start: 1, end: 1, newText: "1" }, { start: 1, end: 1, newText: "2" }]), "a12b");
  });

  it("rejects overlaps", () => {
    assert.throws(() => applyOffsetEdits("abcdef", [{ start: 0, end: 3, newText: "" }, { start: 2, end: 4, newText: "" }]));
  });

  it("counts changed lines", () => {
    assert.deepEqual(lineDelta("a\nb\nc", "a\nB\nc\nd"), { added: 2, removed: 1 });
  });
});

describe("command arguments and results", () => {
  it("parses code action arguments [uri, range]", () => {
    const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 2 } };
    assert.deepEqual(parseTargetArgs(["file:///a.py", range]), { uri: "file:///a.py", range });
    assert.deepEqual(parseTargetArgs([]), { uri: undefined, range: undefined });
    const uriLike = { scheme: "file", toString: () => "file:///b.py" };
    assert.deepEqual(parseTargetArgs([uriLike]), { uri: "file:///b.py", range: undefined });
    assert.deepEqual(parseTargetArgs(["file:///a.py", { start: 1 }]), { uri: "file:///a.py", range: undefined });
  });

  it("parses fix/generate results defensively", () => {
    assert.deepEqual(parseEditResult({ edit: null, verified: false, reason: "no change needed", rounds: 1, title: "Fix" }), {
      edit: null,
      verified: false,
      reason: "no change needed",
      rounds: 1,
      title: "Fix",
    });
    assert.equal(parseEditResult("nope"), undefined);
  });

  it("knows an empty WorkspaceEdit", () => {
    assert.equal(workspaceEditIsEmpty(null), true);
    assert.equal(workspaceEditIsEmpty({ changes: { "file:///a.py": [] } }), true);
    assert.equal(workspaceEditIsEmpty({ changes: { "file:///a.py": [{ range: {}, newText: "x" }] } }), false);
    assert.equal(workspaceEditIsEmpty({ documentChanges: [{ textDocument: {}, edits: [{}] }] }), false);
  });

  it("says when a change is unverified, and why", () => {
    const r = { edit: {}, verified: false, reason: "tests timed out", rounds: 2, title: "Fix IndexError" };
    assert.equal(previewMessage(r, "fix"), "Wren: Fix IndexError — the fix could not be verified (tests timed out). Apply it anyway?");
    assert.match(previewMessage({ ...r, verified: true }, "generate"), /checked after 2 rounds\. Apply it\?/);
    assert.equal(noEditMessage({ ...r, edit: null, reason: "the code already looks right." }, "fix"), "Wren found no fix: the code already looks right.");
  });
});

describe("server log forwarding", () => {
  it("maps Python logging levels and drops the timestamp", async () => {
    const { ServerLogParser } = await import("../src/pure/serverLog");
    const p = new ServerLogParser();
    assert.deepEqual(p.parse("2026-11-23 11:41:01,668 INFO wren.lsp.lifecycle: model ready"), {
      level: "info",
      message: "wren.lsp.lifecycle: model ready",
    });
    assert.deepEqual(p.parse("2026-11-23 11:41:02,001 WARNING wren.config: Unknown setting"), {
      level: "warn",
      message: "wren.config: Unknown setting",
    });
    assert.equal(p.parse("ERROR wren.model: could not load").level, "error");
    assert.deepEqual(p.parse('  File "x.py", line 3, in f'), { level: "error", message: '  File "x.py", line 3, in f' });
    assert.equal(p.parse("DEBUG: x").level, "debug");
  });
});
