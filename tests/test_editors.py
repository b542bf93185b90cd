"""Editor support with real editors' engines: the TextMate grammar tokenised by vscode-textmate on
vscode-oniguruma (what VS Code runs), and Debian's Neovim, headless, attaching its built-in LSP client to
`teamc lsp` and highlighting with the shipped Vim syntax file.

Neither is skipped: tests/install-deps.sh installs `neovim` (apt) and the npm packages (editors/test).
The golden scopes in tests/golden/textmate/ were written by this test's `--update-golden`, from
vscode-textmate 9.3.2 and vscode-oniguruma 2.0.1 (editors/test/package-lock.json); review their diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import GOLDEN, ROOT
from teamc.keywords import KEYWORDS

GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "team.tmLanguage.json"
TOKENIZER = ROOT / "editors" / "test" / "tokenize.js"
TEAM_FILES = sorted([*ROOT.glob("examples/*.team"), *ROOT.glob("tests/editor/*.team")])


def _tokenize(paths) -> dict:
    node = shutil.which("node")
    assert node, "node is missing: run tests/install-deps.sh"
    assert (ROOT / "editors" / "test" / "node_modules" / "vscode-textmate").is_dir(), \
        "vscode-textmate is missing: run tests/install-deps.sh (npm ci in editors/test)"
    proc = subprocess.run([node, str(TOKENIZER), str(GRAMMAR), *[str(p.relative_to(ROOT)) for p in paths]],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.node
def test_the_textmate_grammar_tokenises_every_file_to_its_golden_scopes(update_golden):
    tokens = _tokenize(TEAM_FILES)
    folder = GOLDEN / "textmate"
    for path in TEAM_FILES:
        # One line of JSON per source line: its tokens as [text, scope, inner scope…].
        golden = folder / (path.relative_to(ROOT).as_posix().replace("/", "--") + ".scopes")
        got = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in tokens[path.relative_to(ROOT).as_posix()])
        if update_golden:
            folder.mkdir(exist_ok=True)
            golden.write_text(got)
        assert golden.read_text() == got, f"{path}: scopes differ from {golden} (--update-golden to rewrite)"


@pytest.mark.node
def test_the_textmate_grammar_scopes_keywords_by_context():
    sample = ROOT / "tests" / "editor" / "scopes.team"
    lines = _tokenize([sample])["tests/editor/scopes.team"]
    pairs = {(text.strip(), scopes[-1]) for line in lines for text, *scopes in line}
    for expected in [("vm", "keyword.declaration.vm.team"), ("web", "entity.name.type.vm.team"),
                     ("ua-up0", "entity.name.type.nic.team"), ("persistent", "storage.modifier.role.team"),
                     ("direct", "support.type.source.team"), ("ua-up0", "variable.other.reference.team"),
                     ("52:54:00:aa:00:01", "constant.other.mac.team"),
                     ("0000:03:07.1", "constant.other.pci-address.team"),
                     ("\\\"", "constant.character.escape.team"), ("# a comment", "comment.line.number-sign.team")]:
        assert expected in pairs
    assert not any(text == "bridge" for text, _ in pairs)  # `mode bridge`: a keyword used as a value is a value


def test_every_keyword_is_in_the_textmate_and_vim_grammars():
    grammar = GRAMMAR.read_text()
    vim = (ROOT / "editors" / "nvim" / "syntax" / "team.vim").read_text()
    for word in KEYWORDS:
        if word in ("yes", "no"):
            continue
        alone = rf"(?<![A-Za-z-]){re.escape(word)}(?![A-Za-z-])"
        assert re.search(alone, grammar) and re.search(alone, vim.split("hi def link")[0]), word


def test_the_vscode_extension_is_consistent():
    package = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    grammar = package["contributes"]["grammars"][0]
    assert (ROOT / "editors" / "vscode" / grammar["path"]).resolve() == GRAMMAR
    assert json.loads(GRAMMAR.read_text())["scopeName"] == grammar["scopeName"] == "source.team"
    language = package["contributes"]["languages"][0]
    config = json.loads((ROOT / "editors" / "vscode" / language["configuration"]).read_text())
    assert config["comments"] == {"lineComment": "#"} and config["brackets"] == [["{", "}"]]
    assert (ROOT / "editors" / "vscode" / package["main"]).exists()
    lock = json.loads((ROOT / "editors" / "vscode" / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]


def _neovim(file: str, syntax: list, hover: list, tmp_path) -> dict:
    nvim = shutil.which("nvim")
    assert nvim, "nvim is missing: run tests/install-deps.sh (apt-get install neovim)"
    out = tmp_path / "nvim.json"
    request = {"cmd": [sys.executable, "-m", "teamc", "lsp"], "file": file, "syntax": syntax, "hover": hover,
               "out": str(out)}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEAMC_NVIM_REQUEST": json.dumps(request)}
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", "NONE", "-i", "NONE",
                           "--cmd", "set rtp^=editors/nvim", "-c", "filetype plugin on", "-c", "syntax on",
                           "-c", "luafile tests/editor/nvim_smoke.lua"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(out.read_text())
    assert proc.returncode == 0 and "error" not in result, (proc.stderr, result)
    return result


@pytest.mark.nvim
def test_neovim_attaches_to_teamc_lsp_and_shows_the_diagnostics_and_hover(tmp_path):
    mac_column = (ROOT / "tests/cases/mac-mismatch.team").read_text().splitlines()[1].index("52:54") + 1
    result = _neovim("tests/cases/mac-mismatch.team", [[1, 1], [1, 4], [2, 5], [2, 9], [2, mac_column]], [2, 9],
                     tmp_path)
    assert result["filetype"] == "team" and result["attached"]
    # The Neovim 0.11+ config (lsp/teamc.lua) as Neovim itself loads it.
    assert result["config"] == {"cmd": ["teamc", "lsp"], "filetypes": ["team"], "root_markers": [".git"]}
    assert result["syntax"] == ["teamBlock", "teamName", "teamBlock", "teamName", "teamMac"]
    assert result["diagnostics"] == [{
        "lnum": 2, "col": 47, "code": "E0308", "severity": 1,
        "message": "transient nic `vf0` has MAC 52:54:00:aa:00:10 but its partner persistent nic `ua-up0` has "
                   "52:54:00:aa:00:01\nhelp: the guest's net_failover driver pairs NICs by MAC: give both the "
                   "same `mac`"}]
    assert result["hover"] == [("**nic `vf0`** in VM `web`, transient\n\n(fix the errors in this VM to see the XML "
                                "and QEMU arguments it compiles to)")]


@pytest.mark.nvim
def test_neovim_shows_several_syntax_errors_of_a_broken_file(tmp_path):
    broken = tmp_path / "broken.team"
    broken.write_text("vm a {\n    machin q35\n    team t { persistent virtio user extra }\n}\n")
    result = _neovim(str(broken), [[2, 5]], [1, 6], tmp_path)
    assert [(d["lnum"], d["col"], d["code"]) for d in result["diagnostics"]] == [(1, 4, "E0002"), (2, 36, "E0001")]
    assert result["hover"] and result["hover"][0].startswith("**E0002** `unknown-keyword` (error)")


def test_the_sublime_grammar_is_the_textmate_grammar_as_a_property_list(update_golden):
    # Sublime Text reads TextMate grammars as XML property lists; this one must never drift from the JSON
    # (`--update-golden` writes it from the JSON).
    import plistlib

    grammar = json.loads(GRAMMAR.read_text())
    grammar.pop("$schema")
    sublime = ROOT / "editors" / "sublime" / "team.tmLanguage"
    if update_golden:
        sublime.write_bytes(plistlib.dumps(grammar, sort_keys=True))
    assert plistlib.loads(sublime.read_bytes()) == grammar
