import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fenced, renderLastCompletion } from "../src/pure/lastCompletion";
import { CONTENT_SECURITY_POLICY, renderMarkdown, renderPage } from "../src/pure/markdown";

describe("markdown rendering of untrusted text", () => {
  it("escapes raw HTML and scripts", () => {
    const html = renderMarkdown('Hi <script>alert(1)</script> <img src=x onerror="alert(2)">');
    assert.doesNotMatch(html, /<script/);
    assert.doesNotMatch(html, /<img/);
    assert.match(html, /&lt;script&gt;/);
  });

  it("drops command:, javascript: and file: links but keeps https", () => {
    const html = renderMarkdown("[a](command:workbench.action.terminal.new) [b](javascript:alert(1)) [c](file:///etc/passwd) [d](https://example.com)");
    assert.doesNotMatch(html, /href="command:/);
    assert.doesNotMatch(html, /href="javascript:/);
    assert.doesNotMatch(html, /href="file:/);
    assert.match(html, /href="https:\/\/example.com"/);
  });

  it("renders no images (they would fetch from the network)", () => {
    assert.doesNotMatch(renderMarkdown("![x](https://example.com/t.png)"), /<img/);
  });

  it("renders code blocks", () => {
    const html = renderMarkdown("```python\ndef f(x):\n    return x < 1\n```");
    assert.match(html, /<pre><code class="language-python">def f\(x\):\n {4}return x &lt; 1\n<\/code><\/pre>/);
  });

  it("pages carry a CSP that allows no scripts", () => {
    const page = renderPage({ title: "<t>", markdown: "**hi**", status: "Explaining…" });
    assert.match(page, new RegExp(CONTENT_SECURITY_POLICY.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /script-src/);
    assert.match(page, /<title>&lt;t&gt;<\/title>/);
    assert.match(page, /<strong>hi<\/strong>/);
    assert.match(page, /Explaining…/);
  });
});

describe("Why no completion?", () => {
  it("fences contain any backtick run", () => {
    const f = fenced("a ``` b ```` c");
    assert.ok(f.startsWith("`````\n"));
    assert.ok(f.endsWith("\n`````"));
  });

  it("says when there was no request", () => {
    assert.match(renderLastCompletion(null, "app.py"), /has not seen a completion request for app\\\.py/);
  });

  it("renders every field of the protocol's answer", () => {
    const md = renderLastCompletion(
      {
        uri: "file:///w/app.py",
        position: { line: 9, character: 4 },
        version: 12,
        decision: "skip",
        mode: "none",
        reason: "cursor is inside a string",
        prompt_tokens: 321,
        cached_tokens: 300,
        timings_ms: { trigger: 0.4, prompt: 3.2, generate: 410.7, postprocess: 1.1 },
        raw_output: "    return 1\n```\nSome prose <b>",
        completion: "",
        removed: ["```\nSome prose <b>"],
        context: ["definition of parse_args (cli.py)", "similar: utils.py:10-20"],
      },
      "app.py",
    );
    assert.match(md, /\*\*Decision:\*\* `skip`/);
    assert.match(md, /cursor is inside a string/);
    assert.match(md, /line 10, column 5/);
    assert.match(md, /\| Prompt tokens \| 321 \|/);
    assert.match(md, /\| Reused from cache \| 300 tokens \|/);
    assert.match(md, /\| generate \| 411 \|/);
    assert.doesNotMatch(md, /sum/, "stages nest; no misleading sum");
    assert.match(md, /````\n {4}return 1\n```\nSome prose <b>\n````/);
    assert.match(md, /definition of parse\\_args/);
    // And the rendered HTML carries no raw tag from the model output.
    assert.doesNotMatch(renderMarkdown(md), /<b>/);
  });
});

describe("Why no completion? with the server's extra fields", () => {
  it("accepts a flat line/character and shows extras", () => {
    const md = renderLastCompletion(
      {
        completion: "\ndef area(r):",
        line: 16,
        character: 11,
        decision: "complete",
        generated_tokens: 9,
        stop_reason: "newline",
        source: "model",
        decode_tokens_per_s: 41.21,
        drafted_tokens: 6,
        accepted_tokens: 4,
        candidates: [{ text: "0.5 * base * height", source: "greedy", joint: -1.25 }],
        model: { model: "SmolLM2-135M-Instruct", device: "cpu" },
      },
      "shapes.py",
    );
    assert.match(md, /\| Position \| line 17, column 12 \|/);
    assert.match(md, /\| Generated tokens \| 9 \|/);
    assert.match(md, /\| Stopped because \| newline \|/);
    assert.match(md, /\| Decode speed \| 41\\\.2 tokens\/s \|/);
    assert.match(md, /\| Draft tokens accepted \| 4 of 6 \|/);
    assert.match(md, /\| Model \| SmolLM2\\-135M\\-Instruct on cpu \|/);
    assert.match(md, /Exact text:\n\n```json\n"\\ndef area\(r\):"\n```/);
    assert.match(md, /greedy — joint log-probability -1\.25\n\n```\n0\.5 \* base \* height\n```/);
  });
});
