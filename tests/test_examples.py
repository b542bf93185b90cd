"""Every shipped example compiles cleanly and matches its golden outputs."""

import pytest

from helpers import EXAMPLES, GOLDEN, check_golden
from teamc.pipeline import Options, compile_source, load

SYNTAXES = {"json": Options(), "keyval": Options(qemu_syntax="keyval")}


def compile_example(path, options=Options()):
    source, read_errors = load(f"examples/{path.name}")
    assert not read_errors
    return compile_source(source, options)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles_without_diagnostics(example):
    result = compile_example(example)
    assert result.diagnostics == []
    assert result.artifacts


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_golden(example, syntax, update_golden):
    result = compile_example(example, SYNTAXES[syntax])
    for artifact in result.artifacts:
        if syntax == "keyval" and not artifact.name.endswith(".sh"):
            continue  # the XML does not depend on the QEMU syntax
        check_golden(GOLDEN / "compile" / example.stem / syntax / artifact.name, artifact.text, update_golden)
    expected = {p.name for p in (GOLDEN / "compile" / example.stem / syntax).iterdir()}
    produced = {a.name for a in result.artifacts if syntax == "json" or a.name.endswith(".sh")}
    assert produced == expected, "an output appeared or disappeared; update the golden folder"


def test_argv_lines_format_is_the_same_argv():
    from helpers import argv_from_script

    example = EXAMPLES[0]
    shell = {a.name: a.text for a in compile_example(example).artifacts}
    lines = {a.name: a.text for a in compile_example(example, Options(qemu_format="lines")).artifacts}
    for name, text in shell.items():
        if name.endswith(".sh"):
            argv_file = lines[name.removesuffix(".sh") + ".argv"]
            assert argv_file.splitlines() == argv_from_script(text)
