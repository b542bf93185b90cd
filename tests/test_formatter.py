"""`teamc fmt`: canonical layout, comments kept, idempotent, never changes the AST."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES, ROOT, teamc
from teamc.formatter import format_source, scan_comments
from teamc.parser import parse
from teamc.source import SourceFile, Span


def shape(node):
    """An AST as nested tuples without its spans: what `fmt` must keep."""
    if isinstance(node, tuple):
        return tuple(shape(item) for item in node)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__, *(shape(getattr(node, f.name)) for f in dataclasses.fields(node)
                                       if not isinstance(getattr(node, f.name), Span)))
    return node


def fmt(text: str) -> str:
    out, errors = format_source(SourceFile("t.team", text))
    assert out is not None, errors
    return out


def assert_faithful(text: str) -> str:
    """fmt keeps the AST and the comments, and formatting its output changes nothing."""
    out = fmt(text)
    before, after = parse(SourceFile("a", text))[0], parse(SourceFile("b", out))[0]
    assert before is not None and after is not None
    assert shape(after) == shape(before), f"--- input\n{text}\n--- formatted\n{out}"
    assert [c.text for c in scan_comments(out)] == [c.text.rstrip() for c in scan_comments(text)]
    assert fmt(out) == out, f"not idempotent:\n{out}"
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_formatted(example):
    text = example.read_text()
    assert assert_faithful(text) == text


def test_canonical_layout():
    text = ('vm a {  memory   1 GiB ;team t{persistent virtio user{mtu 9000};transient hostdev 0000:03:07.1}  # hi\n'
            '\n\n\n  # own line\n\tnic ua-x {\r\n source  bridge "br 0"\n\n teaming persistent # why\n'
            ' model virtio # how\n}'
            '\n}; vm b {}')
    assert assert_faithful(text) == (
        "vm a {\n"
        "    memory 1 GiB\n"
        "    team t { persistent virtio user { mtu 9000 }; transient hostdev 0000:03:07.1 }  # hi\n"
        "\n"
        "    # own line\n"
        "    nic ua-x {\n"
        '        source bridge "br 0"\n'
        "\n"
        "        teaming persistent  # why\n"
        "        model virtio        # how\n"
        "    }\n"
        "}\n"
        "\n"
        "vm b {}\n")


def test_long_one_line_block_is_split_and_stays_split():
    team = "team t { " + "; ".join(["mac 52:54:00:00:00:01", "persistent virtio bridge " + "b" * 60,
                                    "transient hostdev 0000:03:07.1 managed yes"]) + " }  # note"
    out = assert_faithful(f"vm a {{\n    {team}\n}}\n")
    assert out == ("vm a {\n    team t {\n        mac 52:54:00:00:00:01\n        persistent virtio bridge " + "b" * 60 +
                   "\n        transient hostdev 0000:03:07.1 managed yes\n    }  # note\n}\n")


def test_comments_in_every_position_are_kept():
    text = ("# head\n\nvm a { # after brace\n  team t { # t\n    mac 00:11:22:33:44:55 ; # after mac\n"
            "    # before persistent\n    persistent virtio user { # opts\n      boot 1 # b\n      # end of opts\n"
            "    } # after opts\n  # last in team\n  } # after team\n  # last in vm\n}\n# tail 1\n\n# tail 2\n")
    assert_faithful(text)


def test_quoted_values_are_re_escaped_canonically():
    assert fmt('vm "a\\qb" { emulator "/x\\\\y\\"z" }') == 'vm "aqb" { emulator "/x\\\\y\\"z" }\n'


def test_empty_and_comment_only_files():
    assert fmt("") == ""
    assert fmt("\n\n  # only\n\n") == "# only\n"


# --- generated programs ---------------------------------------------------------------

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
words = st.from_regex(r'[^\s{};#"]{1,10}', fullmatch=True)
strings = st.text(st.characters(blacklist_categories=("Cs",),
                                blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=12)
comment_text = st.text(st.characters(blacklist_categories=("Cs",),
                                     blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=20)


@st.composite
def values(draw):
    if draw(st.integers(0, 4)):
        return draw(words)
    body = draw(strings)
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@st.composite
def seps(draw):
    """Between statements: `;`, newlines, blank lines, comments, CRLF, tabs."""
    parts = draw(st.lists(st.sampled_from([";", " ; ", "\n", "\n\n", "\r\n", "\t\n  ", "comment", "own"]),
                          min_size=1, max_size=3))
    out = []
    for part in parts:
        if part == "comment":
            part = f"  #{draw(comment_text)}\n"
        elif part == "own":
            part = f"\n   #{draw(comment_text)}\n"
        out.append(part)
    text = "".join(out)
    return text if any(c in text for c in ";\n") else text + ";"


EMPTY, OPEN = ["", " ", "\n"], ["", " ", "\n", "  # open\n"]
BEFORE_BRACE, CLOSE = [" ", "", "  "], ["", " ", "\n", ";", ";\n  "]


@st.composite
def blocks(draw, head, items):
    body = draw(st.lists(items, max_size=4))
    if not body:
        return head + " {" + draw(st.sampled_from(EMPTY)) + "}"
    inner = "".join((draw(seps()) if i else draw(st.sampled_from(OPEN))) + item for i, item in enumerate(body))
    return head + draw(st.sampled_from(BEFORE_BRACE)) + "{" + inner + draw(st.sampled_from(CLOSE)) + "}"


def _managed(draw) -> str:
    return draw(st.sampled_from(["", " managed", " managed yes", " managed no"]))


@st.composite
def sources(draw):
    kind = draw(st.sampled_from(["user", "ethernet", "bridge", "network", "direct", "vhostuser", "hostdev",
                                 "pci-hostdev"]))
    if kind in ("user", "ethernet"):
        return kind
    if kind == "bridge":
        return f"bridge {draw(values())}"
    if kind == "network":
        vias = draw(st.lists(st.sampled_from(["bridge", "vf", "portgroup"]), max_size=3, unique=True))
        return f"network {draw(values())}" + "".join(f" {via} {draw(values())}" for via in vias)
    if kind in ("direct", "vhostuser"):
        return f"{kind} {draw(values())}" + (f" mode {draw(values())}" if draw(st.booleans()) else "")
    return f"{kind} {draw(values())}{_managed(draw)}"


@st.composite
def options(draw):
    key = draw(st.sampled_from(["address", "boot", "mtu", "rom bar", "rom file", "rom enabled", "managed"]))
    if key == "managed":
        return _managed(draw).strip() or "managed"
    return f"{key} {draw(values())}"


@st.composite
def team_items(draw):
    which = draw(st.sampled_from(["mac", "persistent", "transient"]))
    if which == "mac":
        return f"mac {draw(values())}"
    opts = draw(st.one_of(st.just(""), blocks("", options()).map(lambda b: " " + b.lstrip())))
    if which == "persistent":
        return f"persistent {draw(values())} {draw(sources())}{opts}"
    return f"transient {draw(sources())}{opts}"


@st.composite
def nic_items(draw):
    which = draw(st.sampled_from(["mac", "model", "source", "teaming", "option"]))
    if which == "option":
        return draw(options())
    if which == "source":
        return f"source {draw(sources())}"
    if which == "teaming":
        return "teaming persistent" if draw(st.booleans()) else f"teaming transient {draw(values())}"
    return f"{which} {draw(values())}"


@st.composite
def vm_items(draw):
    which = draw(st.sampled_from(["setting", "memory", "allow", "team", "nic"]))
    if which == "setting":
        key = draw(st.sampled_from(["uuid", "machine", "arch", "vcpus", "emulator", "accel"]))
        return f"{key} {draw(values())}"
    if which == "memory":
        return f"memory {draw(values())}" + draw(st.sampled_from(["", " MiB", " GiB", " k"]))
    if which == "allow":
        return f"allow {draw(values())}"
    if which == "team":
        return draw(blocks(f"team {draw(values())}", team_items()))
    return draw(blocks(f"nic {draw(values())}", nic_items()))


@st.composite
def programs(draw):
    vms = [draw(blocks(f"vm {draw(values())}", vm_items())) for _ in range(draw(st.integers(0, 3)))]
    lead = draw(st.sampled_from(["", "# file comment\n\n", "\n", ";"]))
    return lead + "".join((draw(seps()) if i else "") + vm for i, vm in enumerate(vms)) + draw(
        st.sampled_from(["", "\n", "\n# trailing\n", ";\n"]))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=_SUPPRESS)
@given(text=programs())
@example(text='vm a { team t { persistent virtio user {\n} # c\n} }')
@example(text="vm a { nic x { source hostdev 1 managed; managed no }; # c\n}")
def test_fmt_keeps_meaning_and_is_idempotent(text):
    module, errors = parse(SourceFile("g.team", text))
    assert module is not None, f"the generator wrote an invalid program: {errors[0].message}\n{text}"
    assert_faithful(text)


# --- the command ----------------------------------------------------------------------


def test_fmt_rewrites_in_place_and_check_reports(tmp_path):
    path = tmp_path / "a.team"
    path.write_text("vm a {memory 1 GiB}\r\n")
    os.chmod(path, 0o640)
    assert teamc("fmt", "--check", str(path)) == (1, "", f"would reformat {path}\n")
    code, out, _ = teamc("fmt", "--diff", str(path))
    assert code == 0 and "-vm a {memory 1 GiB}" in out and "+vm a { memory 1 GiB }" in out
    assert path.read_text() == "vm a {memory 1 GiB}\n"  # (read_text folds CRLF) --check and --diff wrote nothing
    assert teamc("fmt", str(path)) == (0, "", f"reformatted {path}\n")
    assert path.read_bytes() == b"vm a { memory 1 GiB }\n"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert teamc("fmt", "--check", str(path)) == (0, "", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.team"]


def test_fmt_on_a_symlink_formats_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "a.team"
    target.write_text("vm a {memory 1 GiB}\n")
    link = tmp_path / "link.team"
    link.symlink_to(os.path.join("real", "a.team"))
    assert teamc("fmt", str(link)) == (0, "", f"reformatted {link}\n")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "a.team")
    assert target.read_text() == "vm a { memory 1 GiB }\n"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["a.team"]  # no temporary file left


def test_fmt_stdin_to_stdout():
    assert teamc("fmt", "-", stdin="vm a {}") == (0, "vm a {}\n", "")
    assert teamc("fmt", "--check", "-", stdin="vm a {}\n") == (0, "", "")


def test_fmt_leaves_a_file_with_syntax_errors_alone(tmp_path):
    bad, good = tmp_path / "bad.team", tmp_path / "good.team"
    bad.write_text("vm a { bogus }")
    good.write_text("vm b {  }")
    code, _, err = teamc("fmt", str(bad), str(good))
    assert code == 1 and "error[E0002]" in err
    assert bad.read_text() == "vm a { bogus }" and good.read_text() == "vm b {}\n"


def test_fmt_check_on_the_shipped_examples():
    assert teamc("fmt", "--check", *(str(p.relative_to(ROOT)) for p in EXAMPLES)) == (0, "", "")
