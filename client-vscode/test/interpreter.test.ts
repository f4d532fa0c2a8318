import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  expandPath,
  installCommand,
  resolveInterpreter,
  venvPython,
  type InterpreterInputs,
  type InterpreterProbes,
} from "../src/pure/interpreter";

function inputs(over: Partial<InterpreterInputs> = {}): InterpreterInputs {
  return {
    extensionPath: "/repo/client-vscode",
    workspaceFolders: ["/work/project"],
    workspaceTrusted: true,
    platform: "linux",
    homeDir: "/home/ada",
    env: { VENV: "/opt/venv" },
    ...over,
  };
}

function probes(files: string[], withWren: string[] = []): InterpreterProbes & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    isFile: async (p) => {
      calls.push(`isFile ${p}`);
      return files.includes(p);
    },
    hasWren: async (p) => {
      calls.push(`hasWren ${p}`);
      return withWren.includes(p);
    },
  };
}

describe("resolveInterpreter", () => {
  it("uses wren.server.pythonPath first, with variables expanded", async () => {
    const p = probes(["/repo/.venv/bin/python"]);
    const r = await resolveInterpreter(
      inputs({ settingPath: "${workspaceFolder}/env/bin/python", pythonExtensionPath: "/usr/bin/python3.12" }),
      p,
    );
    assert.deepEqual(r, { path: "/work/project/env/bin/python", source: "setting" });
    assert.deepEqual(p.calls, [], "a configured path is not probed");
  });

  it("expands ~ and ${env:...} in the setting", async () => {
    assert.equal((await resolveInterpreter(inputs({ settingPath: "~/py/bin/python" }), probes([]))).path, "/home/ada/py/bin/python");
    assert.equal((await resolveInterpreter(inputs({ settingPath: "${env:VENV}/bin/python" }), probes([]))).path, "/opt/venv/bin/python");
  });

  it("ignores a blank setting", async () => {
    const r = await resolveInterpreter(inputs({ settingPath: "   ", pythonExtensionPath: "/usr/bin/python3.12" }), probes([]));
    assert.deepEqual(r, { path: "/usr/bin/python3.12", source: "python-extension" });
  });

  it("prefers the Python extension's interpreter over any .venv", async () => {
    const r = await resolveInterpreter(
      inputs({ pythonExtensionPath: "/usr/bin/python3.12" }),
      probes(["/repo/.venv/bin/python", "/work/project/.venv/bin/python"], ["/work/project/.venv/bin/python"]),
    );
    assert.equal(r.source, "python-extension");
  });

  it("uses the checkout's .venv next to client-vscode when developing from a clone", async () => {
    const r = await resolveInterpreter(inputs(), probes(["/repo/.venv/bin/python"]));
    assert.deepEqual(r, { path: "/repo/.venv/bin/python", source: "dev-venv" });
  });

  it("uses a workspace .venv only if wren is installed in it", async () => {
    const without = await resolveInterpreter(inputs(), probes(["/work/project/.venv/bin/python"]));
    assert.deepEqual(without, { path: "python3", source: "fallback" });
    const withWren = await resolveInterpreter(
      inputs({ workspaceFolders: ["/a", "/work/project"] }),
      probes(["/a/.venv/bin/python", "/work/project/.venv/bin/python"], ["/work/project/.venv/bin/python"]),
    );
    assert.deepEqual(withWren, { path: "/work/project/.venv/bin/python", source: "workspace-venv" });
  });

  it("never runs an untrusted workspace's .venv, not even to probe it", async () => {
    const venv = "/work/project/.venv/bin/python";
    const seen = probes([venv], [venv]);
    const chosen = await resolveInterpreter(inputs({ workspaceTrusted: false }), seen);
    assert.deepEqual(chosen, { path: "python3", source: "fallback" });
    assert.ok(!seen.calls.some((c) => c.includes("/work/project/")), seen.calls.join("\n"));
  });

  it("falls back to python3 (python on Windows)", async () => {
    assert.deepEqual(await resolveInterpreter(inputs(), probes([])), { path: "python3", source: "fallback" });
    assert.equal((await resolveInterpreter(inputs({ platform: "win32" }), probes([]))).path, "python");
  });

  it("knows the Windows venv layout", () => {
    assert.equal(venvPython("C:\\p\\.venv", "win32"), "C:\\p\\.venv\\Scripts\\python.exe");
    assert.equal(venvPython("/p/.venv", "darwin"), "/p/.venv/bin/python");
  });
});

describe("installCommand", () => {
  it("is an editable install of the checkout, quoted when needed", () => {
    assert.equal(installCommand("/repo/.venv/bin/python", "/repo"), "/repo/.venv/bin/python -P -m pip install -e /repo");
    assert.equal(
      installCommand("/My Env/bin/python", "/src/my wren"),
      '"/My Env/bin/python" -P -m pip install -e "/src/my wren"',
    );
  });
  it("names a placeholder when the checkout is unknown", () => {
    assert.equal(installCommand("python3", undefined), "python3 -P -m pip install -e /path/to/wren");
  });
});

describe("expandPath", () => {
  it("leaves ${workspaceFolder} alone without a folder", () => {
    assert.equal(expandPath("${workspaceFolder}/x", { homeDir: "/h", env: {} }), "${workspaceFolder}/x");
  });
});
