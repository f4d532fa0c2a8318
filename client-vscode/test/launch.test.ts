import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { IMPORT_CHECK_ARGS, SERVER_ARGS, isInside, isTooOldForSafePath, neutralCwd } from "../src/pure/launch";

describe("SERVER_ARGS / IMPORT_CHECK_ARGS", () => {
  it("start Python with the safe-path flag before -m / -c", () => {
    assert.deepEqual([...SERVER_ARGS], ["-P", "-m", "wren", "serve"]);
    assert.equal(IMPORT_CHECK_ARGS[0], "-P");
    assert.equal(IMPORT_CHECK_ARGS[1], "-c");
  });
  it("are what server.ts and python.ts run (no other argv, no workspace cwd)", () => {
    const server = readFileSync(path.join("src", "server.ts"), "utf8");
    const python = readFileSync(path.join("src", "python.ts"), "utf8");
    assert.match(server, /args: \[\.\.\.SERVER_ARGS\]/);
    assert.doesNotMatch(server, /args: \["-m"/);
    assert.match(server, /cwd,\n/);
    assert.doesNotMatch(server, /cwd: vscode\.workspace/);
    assert.match(python, /execFile\(python, \[\.\.\.IMPORT_CHECK_ARGS\], \{ cwd,/);
    assert.equal(python.match(/\bexecFile\(/g)?.length, 1);
    // Every place in src/ that starts a process goes through these two.
    for (const file of readdirSync("src", { recursive: true }) as string[]) {
      if (!file.endsWith(".ts")) {
        continue;
      }
      const text = readFileSync(path.join("src", file), "utf8");
      const usesChildProcess = /from "(node:)?child_process"|require\("(node:)?child_process"\)/.test(text);
      assert.equal(usesChildProcess, file === "python.ts", `${file} starts processes`);
    }
  });
});

describe("neutralCwd", () => {
  const ws = ["/home/ada/project", "/srv/other"];
  it("prefers the extension's storage folder", () => {
    assert.equal(neutralCwd(["/home/ada/.config/Code/globalStorage/wren.wren", "/tmp"], ws, "linux"), "/home/ada/.config/Code/globalStorage/wren.wren");
  });
  it("never returns a workspace folder or a folder inside one", () => {
    assert.equal(neutralCwd(["/home/ada/project/.storage", "/tmp"], ws, "linux"), "/tmp");
    assert.equal(neutralCwd([undefined, "/srv/other"], ws, "linux"), "/");
    assert.equal(neutralCwd(["C:\\Work\\Proj\\x", "c:\\work\\proj"], ["c:\\work\\proj"], "win32"), "C:\\");
  });
  it("falls back past a missing storage folder", () => {
    assert.equal(neutralCwd([undefined, "/tmp"], ws, "linux"), "/tmp");
  });
  it("isInside compares whole path segments", () => {
    assert.equal(isInside("/home/ada/project2", "/home/ada/project", "linux"), false);
    assert.equal(isInside("/home/ada/project/a/b", "/home/ada/project", "linux"), true);
    assert.equal(isInside("/home/ada/project", "/home/ada/project/", "linux"), true);
    assert.equal(isInside("/Users/Ada/Proj", "/users/ada/proj", "darwin"), true);
  });
});

describe("isTooOldForSafePath", () => {
  it("recognises Python 3.10's answer to -P", () => {
    assert.equal(isTooOldForSafePath("Unknown option: -P\nusage: python3 [option] ...\nTry `python -h' for more information."), true);
    assert.equal(isTooOldForSafePath("ModuleNotFoundError: No module named 'wren'"), false);
  });
});

// The repository's venv (scripts/setup.sh), when there is one: the probe really ignores a planted wren/.
const VENV_PYTHON = path.resolve("..", ".venv", "bin", "python");

describe("the import probe with a real Python", { skip: !existsSync(VENV_PYTHON) && "no ../.venv" }, () => {
  it("finds the installed wren, not a workspace's wren/ package, even run from the workspace", () => {
    const workspace = mkdtempSync(path.join(os.tmpdir(), "wren-ws-"));
    try {
      const marker = path.join(workspace, "MARKER");
      mkdirSync(path.join(workspace, "wren"));
      writeFileSync(
        path.join(workspace, "wren", "__init__.py"),
        `open(${JSON.stringify(marker)}, "w").write("imported")\n__file__ = "planted"\n`,
      );
      const out = execFileSync(VENV_PYTHON, [...IMPORT_CHECK_ARGS], { cwd: workspace, encoding: "utf8" });
      assert.equal(existsSync(marker), false, "the workspace's wren/ was imported");
      assert.match(out, /server[/\\]wren[/\\]__init__\.py 3\.\d+/);
      // The hole this closes: the same probe without -P imports the planted package.
      execFileSync(VENV_PYTHON, IMPORT_CHECK_ARGS.slice(1), { cwd: workspace, encoding: "utf8" });
      assert.equal(existsSync(marker), true, "control: without -P the planted package is imported");
    } finally {
      rmSync(workspace, { recursive: true, force: true });
    }
  });
});
