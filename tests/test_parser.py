"""Parse phase: `.team` text -> AST (teamc.nodes) or syntax diagnostics (several, with recovery).

Small inline programs; every assertion is on exact values: node types, value
texts, span texts, codes, line:col and messages.
"""

import re
import tomllib
from itertools import pairwise
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ROOT
from teamc import nodes as n
from teamc.parser import MAX_SYNTAX_ERRORS, grammar, parse, parse_tolerant
from teamc.source import SourceFile

TEAM = "team up0 { persistent virtio user; transient hostdev 0000:03:07.1 }"


def ok(text: str, name: str = "t.team") -> n.Module:
    module, diags = parse(SourceFile(name, text))
    assert diags == [], [(d.code, d.message) for d in diags]
    assert module is not None
    return module


def err(text: str):
    """The single syntax diagnostic for `text`."""
    module, diags = parse(SourceFile("t.team", text))
    assert module is None
    assert len(diags) == 1, diags
    return diags[0]


def only_vm(text: str) -> n.Vm:
    module = ok(text)
    assert len(module.vms) == 1
    return module.vms[0]


# --- the two surface forms ----------------------------------------------------


def test_team_form_parses():
    vm = only_vm("vm web {\n  team up0 {\n    mac 52:54:00:aa:00:01\n    persistent virtio bridge br0\n"
                 "    transient hostdev 0000:03:07.1 managed yes\n  }\n}\n")
    assert vm.name.text == "web"
    (team,) = vm.items
    assert isinstance(team, n.Team)
    assert team.name.text == "up0"
    mac, pers, trans = team.items
    assert isinstance(mac, n.Mac) and mac.value.text == "52:54:00:aa:00:01"
    assert isinstance(pers, n.Persistent)
    assert pers.model.text == "virtio"
    assert (pers.source.kind, pers.source.target.text, pers.options) == ("bridge", "br0", ())
    assert isinstance(trans, n.Transient)
    assert (trans.source.kind, trans.source.target.text) == ("hostdev", "0000:03:07.1")
    assert trans.source.managed.enabled is True


def test_explicit_form_parses():
    vm = only_vm(
        "vm web {\n"
        "  nic ua-up0 { model virtio; source bridge br0; mac 52:54:00:aa:00:01; teaming persistent }\n"
        "  nic vf0 { source hostdev 0000:03:07.1 managed no; address 0000:05:00.0; rom bar off;"
        " teaming transient ua-up0 }\n"
        "}\n")
    pers, vf = vm.items
    assert isinstance(pers, n.Nic) and isinstance(vf, n.Nic)
    assert pers.name.text == "ua-up0"
    assert [type(i).__name__ for i in pers.items] == ["Model", "NicSource", "Mac", "Teaming"]
    assert pers.items[0].value.text == "virtio"
    assert pers.items[1].source.kind == "bridge"
    assert (pers.items[3].role, pers.items[3].target) == ("persistent", None)
    assert [type(i).__name__ for i in vf.items] == ["NicSource", "Option", "Option", "Teaming"]
    assert vf.items[0].source.managed.enabled is False
    assert (vf.items[1].key, vf.items[1].value.text) == ("address", "0000:05:00.0")
    assert (vf.items[2].key, vf.items[2].value.text) == ("rom bar", "off")
    assert (vf.items[3].role, vf.items[3].target.text) == ("transient", "ua-up0")


def test_all_sources_and_options():
    vm = only_vm(
        "vm a {\n"
        "  team t1 { persistent virtio user { mtu 9000; boot 1; address 0000:05:00.0 }"
        "; transient pci-hostdev 0000:03:07.1 managed { rom file /x.rom; rom enabled no } }\n"
        "  team t2 { persistent virtio network net0 bridge virbr0; transient network pool vf 0000:03:07.2 }\n"
        "  team t3 { persistent virtio direct eth0 mode vepa; transient hostdev 0000:03:07.3 { managed no } }\n"
        "}\n")
    t1, t2, t3 = vm.items
    p1, v1 = t1.items
    assert [(o.key, o.value.text) for o in p1.options] == [("mtu", "9000"), ("boot", "1"),
                                                          ("address", "0000:05:00.0")]
    assert (v1.source.kind, v1.source.managed.enabled) == ("pci-hostdev", True)
    assert [(o.key, o.value.text) for o in v1.options] == [("rom file", "/x.rom"), ("rom enabled", "no")]
    p2, v2 = t2.items
    assert (p2.source.kind, p2.source.target.text, p2.source.via_bridge.text) == ("network", "net0", "virbr0")
    assert (v2.source.kind, v2.source.target.text, v2.source.via_vf.text) == ("network", "pool", "0000:03:07.2")
    p3, v3 = t3.items
    assert (p3.source.kind, p3.source.target.text, p3.source.mode.text) == ("direct", "eth0", "vepa")
    assert [(o.key, o.value.text) for o in v3.options] == [("managed", "no")]


def test_settings():
    vm = only_vm("vm a {\n uuid c7a5fdbd-edaf-9455-926a-d65c16db1809\n machine q35\n arch x86_64\n vcpus 2\n"
                 " emulator /usr/bin/qemu-system-x86_64\n accel tcg\n memory 214 MiB\n allow pc-machine-team\n}")
    got = [(s.key, s.value.text, s.unit.text if s.unit else None) for s in vm.items]
    assert got == [("uuid", "c7a5fdbd-edaf-9455-926a-d65c16db1809", None), ("machine", "q35", None),
                   ("arch", "x86_64", None), ("vcpus", "2", None),
                   ("emulator", "/usr/bin/qemu-system-x86_64", None), ("accel", "tcg", None),
                   ("memory", "214", "MiB"), ("allow", "pc-machine-team", None)]


def test_memory_without_unit_parses():
    (setting,) = only_vm("vm a { memory 2 }").items
    assert (setting.key, setting.value.text, setting.unit) == ("memory", "2", None)


# --- layout of the text: comments, separators, blank lines -----------------------


def test_semicolons_and_newlines_are_equivalent():
    by_newline = only_vm("vm a {\n  machine q35\n  vcpus 2\n}")
    by_semicolon = only_vm("vm a { machine q35; vcpus 2 }")
    mixed = only_vm("vm a {; machine q35;;\n\n vcpus 2 ;\n\n}")
    no_space = only_vm("vm a{machine q35;vcpus 2}")
    for vm in (by_newline, by_semicolon, mixed, no_space):
        assert [(s.key, s.value.text) for s in vm.items] == [("machine", "q35"), ("vcpus", "2")]


def test_comments_and_blank_lines():
    vm = only_vm("# header\n\n\nvm a {   # after the brace\n\n  # a full-line comment\n"
                 "  machine q35 # trailing\n\n\n}\n# footer\n\n")
    assert [(s.key, s.value.text) for s in vm.items] == [("machine", "q35")]


def test_crlf_line_endings():
    vm = only_vm("vm a {\r\n  machine q35\r\n  vcpus 2\r\n}\r\n")
    assert [(s.key, s.value.text) for s in vm.items] == [("machine", "q35"), ("vcpus", "2")]


def test_comment_character_ends_a_word():
    (team,) = only_vm("vm a { team x { persistent virtio bridge br0#c\n transient hostdev 0000:03:07.1 } }").items
    assert team.items[0].source.target.text == "br0"


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n", "# only\n# comments\n", "# no newline at the end", ";\n;"])
def test_empty_file_or_only_comments(text):
    module = ok(text)
    assert module.vms == ()
    assert (module.span.start, module.span.end) == (0, len(text))


def test_several_vms_per_file():
    module = ok("vm a { machine q35 }\nvm b {}\n\n# between\nvm c { vcpus 4 }; vm d {}")
    assert [vm.name.text for vm in module.vms] == ["a", "b", "c", "d"]
    assert module.vms[1].items == ()


def test_empty_blocks():
    vm = only_vm("vm a { team x { } ; nic y {} }")
    team, nic = vm.items
    assert (team.name.text, team.items) == ("x", ())
    assert (nic.name.text, nic.items) == ("y", ())


# --- values -----------------------------------------------------------------------


def test_quoted_strings_with_escapes():
    (setting,) = only_vm('vm a { emulator "/a\\"b\\\\c\\n\\td\\q" }').items
    assert setting.value.text == '/a"b\\c\n\tdq'
    assert setting.value.quoted is True
    assert setting.value.span.text == '"/a\\"b\\\\c\\n\\td\\q"'


def test_quoted_string_may_hold_separators():
    vm = only_vm('vm "my vm" { emulator "/opt/q e m u;{x}#1" }')
    assert (vm.name.text, vm.name.quoted, vm.name.span.text) == ("my vm", True, '"my vm"')
    assert vm.items[0].value.text == "/opt/q e m u;{x}#1"


def test_unquoted_value_is_not_quoted():
    vm = only_vm("vm a {}")
    assert (vm.name.text, vm.name.quoted) == ("a", False)


def test_keywords_usable_as_values():
    vm = only_vm("vm a {\n"
                 "  team t1 { persistent virtio direct eth0 mode bridge; transient hostdev 0000:03:07.1 }\n"
                 "  team t2 { persistent virtio bridge user; transient hostdev 0000:03:07.2 }\n"
                 "  team t3 { persistent virtio network network bridge bridge; transient network vf vf 0000:03:07.3 }\n"
                 "  nic n { source bridge source; teaming transient transient }\n"
                 "}")
    t1, t2, t3, nic = vm.items
    assert t1.items[0].source.mode.text == "bridge"
    assert (t2.items[0].source.kind, t2.items[0].source.target.text) == ("bridge", "user")
    assert (t3.items[0].source.target.text, t3.items[0].source.via_bridge.text) == ("network", "bridge")
    assert (t3.items[1].source.target.text, t3.items[1].source.via_vf.text) == ("vf", "0000:03:07.3")
    assert nic.items[0].source.target.text == "source"
    assert nic.items[1].target.text == "transient"


def test_keywords_as_names():
    vm = only_vm("vm vm { team team { mac mac; persistent persistent user } ; nic nic {} ; machine memory }")
    team, nic, setting = vm.items
    assert vm.name.text == "vm"
    assert team.name.text == "team"
    assert team.items[0].value.text == "mac"
    assert team.items[1].model.text == "persistent"
    assert nic.name.text == "nic"
    assert (setting.key, setting.value.text) == ("machine", "memory")


# --- spans ------------------------------------------------------------------------


SPAN_PROGRAM = (
    "# spans\n"
    "vm web {\n"
    "  memory 2 GiB\n"
    "  team up0 {\n"
    "    mac 52:54:00:aa:00:01\n"
    "    persistent virtio bridge br0 { mtu 9000 }\n"
    "    transient hostdev 0000:03:07.1 managed\n"
    "  }\n"
    "  nic ua-x { source user; teaming persistent }\n"
    "}\n"
)


def test_value_spans_point_at_their_text():
    vm = only_vm(SPAN_PROGRAM)
    memory, team, nic = vm.items
    mac, pers, trans = team.items
    expected = [
        (vm.name, "web", (2, 4)),
        (memory.value, "2", (3, 10)),
        (memory.unit, "GiB", (3, 12)),
        (team.name, "up0", (4, 8)),
        (mac.value, "52:54:00:aa:00:01", (5, 9)),
        (pers.model, "virtio", (6, 16)),
        (pers.source.target, "br0", (6, 30)),
        (pers.options[0].value, "9000", (6, 40)),
        (trans.source.target, "0000:03:07.1", (7, 23)),
        (nic.name, "ua-x", (9, 7)),
    ]
    for value, text, line_col in expected:
        assert (value.span.text, value.span.line_col) == (text, line_col)


def test_node_spans_cover_keyword_to_closing_brace():
    vm = only_vm(SPAN_PROGRAM)
    memory, team, nic = vm.items
    mac, pers, trans = team.items
    assert vm.span.text == SPAN_PROGRAM[SPAN_PROGRAM.index("vm web"):].rstrip("\n")
    assert vm.span.line_col == (2, 1)
    assert team.span.text.startswith("team up0 {") and team.span.text.endswith("managed\n  }")
    assert team.span.line_col == (4, 3)
    assert nic.span.text == "nic ua-x { source user; teaming persistent }"
    assert memory.span.text == "memory 2 GiB"
    assert mac.span.text == "mac 52:54:00:aa:00:01"
    assert pers.span.text == "persistent virtio bridge br0 { mtu 9000 }"
    assert pers.source.span.text == "bridge br0"
    assert pers.options[0].span.text == "mtu 9000"
    assert trans.span.text == "transient hostdev 0000:03:07.1 managed"
    assert trans.source.managed.span.text == "managed"
    assert nic.items[0].span.text == "source user"
    assert nic.items[1].span.text == "teaming persistent"


def test_module_span_is_the_whole_file():
    module = ok(SPAN_PROGRAM)
    assert module.span.text == SPAN_PROGRAM


# --- syntax errors: E0001 ---------------------------------------------------------


def test_extra_value_on_a_line():
    d = err("vm web {\n  team up0 {\n    mac 52:54:00:aa:00:01 52:54:00:aa:00:02\n  }\n}\n")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (3, 27), "52:54:00:aa:00:02")
    assert d.message == "unexpected `52:54:00:aa:00:02`; expected '}' or a newline or ';'"
    assert d.help == "put each statement on its own line or separate statements with `;`"


def test_missing_value():
    d = err("vm a { machine }")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (1, 16), "}")
    assert d.message == "unexpected `}`; expected a value"
    assert d.help == "write the value on the same line as its keyword"


def test_value_on_the_next_line():
    d = err("vm a {\n  machine\n  q35\n}")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (2, 10), "")
    assert d.message == "unexpected end of line; expected a value"


def test_missing_open_brace():
    d = err("vm a machine q35")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (1, 6), "machine")
    assert d.message == "`machine` is not allowed here; expected '{'"


def test_statement_in_the_wrong_block():
    d = err("vm a {\n  persistent virtio user\n}")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (2, 3), "persistent")
    assert d.message.startswith("unexpected `persistent`; expected '}', `accel`, `allow`")


def test_top_level_statement_outside_a_vm():
    d = err("team x {}")
    assert (d.code, d.span.line_col) == ("E0001", (1, 1))
    assert d.message == "`team` is not allowed here; expected `vm`, end of file or a newline or ';'"


def test_two_vms_on_one_line_need_a_separator():
    d = err("vm a { machine q35 } vm b {}")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (1, 22), "vm")
    assert d.message == "`vm` is not allowed here; expected end of file or a newline or ';'"


def test_stray_closing_brace():
    d = err(f"vm a {{ {TEAM} }} }}")
    assert (d.code, d.span.text) == ("E0001", "}")
    assert d.span.line_col == (1, len(f"vm a {{ {TEAM} }} ") + 1)
    assert d.message == "unexpected `}`; expected end of file or a newline or ';'"


def test_unexpected_character():
    # A no-break space is whitespace to WORD but not skipped as a separator.
    d = err("vm a { machine q35 }\nvm b {\n  machine q35\xa0\n}")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (3, 14), "\xa0")
    assert d.message == "unexpected character '\\xa0'"


def test_unterminated_string_on_a_later_line():
    d = err('vm a { machine q35 }\nvm b { machine "x" "y }')
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (2, 20), '"y }')
    assert d.message == "unterminated string"


def test_end_of_file_inside_a_block():
    d = err("vm web {\n    team up0 {\n        persistent virtio user\n        transient hostdev 0000:03:07.1\n")
    assert (d.code, d.span.line_col, d.span.text) == ("E0001", (4, 39), "")
    assert d.message == "unexpected end of file; expected '}', `mac`, `persistent` or `transient`"
    assert d.help == "a block opened with `{` must be closed with `}`"


def test_end_of_file_points_at_the_end_of_the_last_non_blank_text():
    d = err("vm a {\n  memory 2 GiB\n\n   \n\t\n\n")
    assert (d.code, d.span.line_col) == ("E0001", (2, 15))
    assert d.message == ("unexpected end of file; expected '}', `accel`, `allow`, `arch`, `emulator`, "
                         "`machine`, `memory`, `nic`, `team`, `uuid` or `vcpus`")


def test_end_of_file_after_an_open_brace():
    d = err("vm a {\n  team x {\n\n")
    assert (d.code, d.span.line_col) == ("E0001", (2, 11))
    assert d.message == "unexpected end of file; expected '}', `mac`, `persistent` or `transient`"


def test_end_of_file_where_a_value_is_expected():
    d = err("vm")
    assert (d.code, d.span.line_col) == ("E0001", (1, 3))
    assert d.message == "unexpected end of file; expected a value"
    assert d.help is None


def test_unterminated_string():
    d = err('vm web {\n    emulator "/usr/bin/qemu-system-x86_64\n}\n')
    assert (d.code, d.span.line_col) == ("E0001", (2, 14))
    assert d.span.text == '"/usr/bin/qemu-system-x86_64'  # to the end of its line
    assert d.message == "unterminated string"
    assert d.help == 'close the string with `"` on the same line'


def test_unterminated_string_at_end_of_file():
    d = err('vm "a')
    assert (d.code, d.span.line_col, d.span.text, d.message) == ("E0001", (1, 4), '"a', "unterminated string")


def test_escaped_quote_does_not_close_a_string():
    d = err('vm a { emulator "abc\\" }')
    assert (d.code, d.span.line_col, d.message) == ("E0001", (1, 17), "unterminated string")


# --- unknown keywords: E0002 ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line_col", "word", "suggestion"),
    [
        ("vm a { team up0 { persistant virtio user; transient hostdev 0000:03:07.1 } }", (1, 19),
         "persistant", "persistent"),
        ("vm a { team up0 { persistent virtio user; transient hostdv 0000:03:07.1 } }", (1, 53),
         "hostdv", "hostdev"),
        ("vm a {\n  mahcine q35\n}", (2, 3), "mahcine", "machine"),
        ("vm a { team x { mca 52:54:00:00:00:01 } }", (1, 17), "mca", "mac"),
        ("vm a { nic x { teaming persistant } }", (1, 24), "persistant", "persistent"),
        ("vm a { nic x { sorce user } }", (1, 16), "sorce", "source"),
        ("vm a { team x { persistent virtio user\n transeint hostdev 0000:03:07.1 } }", (2, 2),
         "transeint", "transient"),
        ("vm a { team x { persistent virtio usr } }", (1, 35), "usr", "user"),
        ("vm a { team x { persistent virtio user { rom bra off } } }", (1, 46), "bra", "bar"),
    ],
)
def test_did_you_mean(text, line_col, word, suggestion):
    d = err(text)
    assert (d.code, d.span.line_col, d.span.text) == ("E0002", line_col, word)
    assert d.message == f"unknown keyword `{word}`"
    assert d.help == f"did you mean `{suggestion}`?"


def test_unknown_word_without_close_match_lists_alternatives():
    d = err("vm a {\n  frobnicate q35\n}")
    assert (d.code, d.span.line_col, d.span.text) == ("E0002", (2, 3), "frobnicate")
    assert d.message == "unknown keyword `frobnicate`"
    assert d.help == ("expected '}', `accel`, `allow`, `arch`, `emulator`, `machine`, `memory`, `nic`, "
                      "`team`, `uuid`, `vcpus` or a newline or ';'")


def test_unknown_word_in_a_nic_block_lists_its_statements():
    d = err("vm a { nic x { foo } }")
    assert (d.code, d.span.line_col) == ("E0002", (1, 16))
    assert d.help == ("expected '}', `acpi`, `address`, `backend`, `bandwidth`, `boot`, `coalesce`, `driver`, "
                      "`filterref`, `libvirt`, `link`, `mac`, `managed`, `model`, `mtu`, `port`, `rom`, `source`, "
                      "`target`, `teaming`, `tune`, `virtualport`, `vlan` or a newline or ';'")


def test_unknown_teaming_role_lists_the_roles():
    d = err("vm a { nic x { teaming foo } }")
    assert (d.code, d.message, d.help) == ("E0002", "unknown keyword `foo`", "expected `persistent` or `transient`")


def test_bad_managed_value():
    d = err("vm a { team x { persistent virtio user; transient hostdev 0000:03:07.1 managed maybe } }")
    assert (d.code, d.span.text, d.message) == ("E0002", "maybe", "unknown keyword `maybe`")
    assert d.help == "expected '{', '}', `no`, `yes` or a newline or ';'"


# A keyword is only a keyword as a whole word: a misspelling that extends one
# (`vma`, `teamup0`, `transienthostdev`, `machinery`, `hostdevs`) is reported on
# the whole word, never split into the keyword and a value (`vm a`, `team up0`).
@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("vma {}", "vma"),
        ("vm a { teamup0 { persistent virtio user; transient hostdev 0000:03:07.1 } }", "teamup0"),
        ("vm a { team up0 { persistent virtio user; transienthostdev 0000:03:07.1 } }", "transienthostdev"),
        ("vm a { machinery q35 }", "machinery"),
        ("vm a { team x { persistent virtio user; transient hostdevs 0000:03:07.1 } }", "hostdevs"),
    ],
)
def test_keyword_followed_by_letters_is_not_split(text, word):
    module, diags = parse(SourceFile("t.team", text))
    assert module is None, f"`{word}` was split into a keyword and a value"
    assert len(diags) == 1
    assert diags[0].span.text == word


# --- the parser is reusable -------------------------------------------------------


def test_parser_is_reusable_and_results_are_independent():
    a_src = SourceFile("a.team", "vm alpha { machine q35 }")
    b_src = SourceFile("b.team", "\n\nvm beta {\n  vcpus 4\n}")
    a1, _ = parse(a_src)
    b, _ = parse(b_src)
    bad, bad_diags = parse(SourceFile("c.team", "vm {"))
    a2, _ = parse(a_src)
    assert bad is None and bad_diags[0].span.source.name == "c.team"
    # The first result is untouched by the later parses.
    assert a1.vms[0].name.text == "alpha"
    assert a1.vms[0].name.span.source is a_src
    assert str(a1.vms[0].name.span) == "a.team:1:4"
    assert a1.vms[0].items[0].value.span.text == "q35"
    assert b.vms[0].name.span.source is b_src
    assert str(b.vms[0].name.span) == "b.team:3:4"
    assert b.vms[0].items[0].value.span.text == "4"
    # Parsing the same source again gives an equal, but new, tree.
    assert a1 == a2 and a1 is not a2


def test_error_then_success():
    assert err("vm a {").code == "E0001"
    assert only_vm("vm a {}").name.text == "a"
    assert err("vm a { mahcine q35 }").code == "E0002"


# --- the fast path and Lark agree ----------------------------------------------------


def _both_paths(text: str):
    """(fast path result, Lark path result); an error is its rendered diagnostic."""
    from lark.exceptions import UnexpectedInput, UnexpectedToken

    from teamc import parser as parser_module
    from teamc.diagnostics import render_human

    source = SourceFile("t.team", text)
    parser = parser_module._parser()
    lark, builder = parser.lark, parser.builder
    builder.source = source
    try:
        fast = parser_module._drive(parser, source, recover=False).module
    except UnexpectedToken as err:
        fast = render_human(parser_module._syntax_diagnostic(lark, source, err))
    except parser_module._Bail:
        fast = "bailed"
    builder.source = source
    try:
        slow = lark.parse(text)
    except UnexpectedInput as err:
        slow = render_human(parser_module._syntax_diagnostic(lark, source, err))
    return fast, slow


def test_fast_path_builds_the_same_ast_as_lark_for_every_file_in_the_tree():
    files = [*ROOT.glob("examples/*.team"), *ROOT.glob("tests/cases/*.team"), *ROOT.glob("tests/conformance/*.team")]
    assert files
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        fast, slow = _both_paths(text)
        assert fast == slow or (fast == "bailed" and isinstance(slow, str)), path


_SOUP = st.lists(st.sampled_from([
    "vm", "team", "nic", "a", "b1", "{", "}", ";", "\n", "\r\n", " ", "\t", "# c\n", '"q"', '"x y"', "mac",
    "52:54:00:00:00:01", "persistent", "transient", "virtio", "user", "bridge", "br0", "hostdev", "0000:03:07.1",
    "network", "vf", "direct", "mode", "pci-hostdev", "managed", "yes", "no", "memory", "2", "MiB", "machine",
    "q35", "address", "boot", "mtu", "rom", "bar", "off", "teaming", "source", "model", "allow", "vma", '"',
    "\f", "\r", "\r\n\t", "k", "K", '"a\\"b"', "#",
]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_SOUP)
def test_fast_path_never_disagrees_with_lark(tokens):
    # Same AST, or the very same rendered syntax diagnostic.
    fast, slow = _both_paths(" ".join(tokens))
    assert fast == slow or (fast == "bailed" and isinstance(slow, str))


def _clean_and_recovering(text: str):
    """(the clean path's module, or None where it gives up; the recovering path's result)"""
    from teamc import parser as parser_module

    source = SourceFile("t.team", text)
    parser = parser_module._parser()
    parser.builder.source = source
    recovered = parser_module._drive(parser, source, recover=True)
    try:
        return parser_module._parse_clean(parser.tables, text), recovered
    except parser_module._Bail:
        return None, recovered


def test_the_clean_path_builds_the_recovering_paths_ast_for_every_file_in_the_tree():
    for path in _lark_files():
        clean, recovered = _clean_and_recovering(path.read_bytes().decode("utf-8", errors="replace"))
        assert (clean is None) == bool(recovered.diagnostics), path
        assert clean is None or clean == recovered.module, path


@settings(max_examples=300, deadline=None)
@given(_SOUP)
def test_the_clean_path_gives_up_exactly_where_the_recovering_path_reports(tokens):
    clean, recovered = _clean_and_recovering(" ".join(tokens))
    assert (clean is None) == bool(recovered.diagnostics)
    assert clean is None or clean == recovered.module


def test_runs_of_whole_vms_parse_to_the_whole_files_vms():
    """`parse_part`, what a run of a file compiled in parts parses: cut at each VM's line, the runs' VMs are
    the whole file's, spans and all; a cut inside a VM does not parse."""
    from teamc.parser import parse_part
    from teamc.parts import cuts

    # Besides the tree's files: VMs after comments, indented, quoted, on one line with `;`, with CRLF.
    mixed = ('# a fleet\r\nvm a { team t { persistent virtio user; transient hostdev 0000:01:00.1 } }\r\n'
             '\r\n  # b\r\n  vm "b" {\r\n  memory 1 GiB\r\n}\r\nvm\tc {}; vm d {}\r\n\tvm e {\r\n}  \r\n')
    checked = 0
    for name, text in [("mixed", mixed), *((str(p), p.read_bytes().decode("utf-8", errors="replace"))
                                           for p in _lark_files())]:
        source = SourceFile(name, text)
        path = name
        whole, _ = parse(source)
        bounds = cuts(source.text, 1000, min_vms=1)
        if whole is None or len(bounds) < 3:
            continue
        runs = [parse_part(source, start, end) for start, end in pairwise(bounds)]
        assert [vm for run in runs for vm in run.vms] == list(whole.vms), path
        inside = source.text.index("{", bounds[1]) + 1  # just inside the second run's first VM
        assert parse_part(source, 0, inside) is None and parse_part(source, inside, len(source.text)) is None
        checked += 1
    assert checked > 5


# --- the grammar is the only source of tokens ------------------------------------------


def _fast_tokens(text: str) -> tuple[list[tuple[str, str, int]], int]:
    """The fast lexer's tokens (a keyword typed as one wherever it stands, as Lark's basic lexer does) and
    where it stopped."""
    g = grammar()
    out, pos = [], 0
    while pos < len(text):
        m = g.lexer.match(text, pos)
        if m is None:
            break
        if m.lastgroup not in g.ignored:
            kind = g.keywords.get(m.group(), g.word) if m.lastgroup == g.word else m.lastgroup
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out, pos


def _lark_tokens(text: str) -> tuple[list[tuple[str, str, int]], int]:
    from lark.exceptions import UnexpectedCharacters

    from teamc import parser as parser_module

    out = []
    try:
        for tok in parser_module._parser().lark.lex(text):
            out.append((tok.type, tok.value, tok.start_pos))
    except UnexpectedCharacters as err:
        return out, err.pos_in_stream
    return out, len(text)


def _lark_files() -> list:
    return [*ROOT.glob("examples/*.team"), *ROOT.glob("tests/cases/*.team"), *ROOT.glob("tests/conformance/*.team")]


def test_the_fast_lexer_reads_exactly_larks_tokens_in_every_file_in_the_tree():
    files = _lark_files()
    assert files
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert _fast_tokens(text) == _lark_tokens(text), path


@settings(max_examples=300, deadline=None)
@given(_SOUP)
def test_the_fast_lexer_never_disagrees_with_larks_lexer(tokens):
    text = " ".join(tokens)
    assert _fast_tokens(text) == _lark_tokens(text)


def test_the_tables_are_per_parser_and_call_their_own_builder():
    # Another thread's parser: its tables hold callbacks bound to its own builder, never this one's.
    import threading

    from teamc import parser as parser_module

    here = parser_module._parser()
    there = []
    thread = threading.Thread(target=lambda: there.append(parser_module._parser()))
    thread.start()
    thread.join()
    assert there[0].tables is not here.tables and there[0].builder is not here.builder
    a, b = SourceFile("a.team", "vm a {}"), SourceFile("b.team", "vm b {}")
    here.builder.source, there[0].builder.source = a, b
    assert parser_module._drive(there[0], b, recover=False).module.vms[0].span.source is b
    assert parser_module._drive(here, a, recover=False).module.vms[0].span.source is a


def test_a_lark_without_the_internals_the_fast_path_uses_is_refused_loudly(monkeypatch):
    import lark.parsers.lalr_parser_state as lark_state

    from teamc import parser as parser_module

    parser = parser_module._parser()
    lark, builder = parser.lark, parser.builder
    hollow = SimpleNamespace(parser=SimpleNamespace(parser=SimpleNamespace(parser=SimpleNamespace())),
                             terminals=lark.terminals, rules=lark.rules, lexer_conf=lark.lexer_conf)
    with pytest.raises(RuntimeError, match=r"lacks what teamc's fast parser uses \(Lark.parser.parser.parser"):
        parser_module._Tables(hollow, builder)
    monkeypatch.setattr(lark_state, "ParseConf", lambda parse_table, callbacks: None)
    with pytest.raises(RuntimeError, match=r"ParseConf\(parse_table, callbacks, start\)"):
        parser_module._Tables(lark, builder)


def test_the_cached_plan_is_larks_analysis_and_a_clean_parse_never_makes_larks_parser(tmp_path, monkeypatch):
    import threading

    from teamc import parser as parser_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    parser_module._cached_plan.cache_clear()
    try:
        made = parser_module._cached_plan()  # made from Lark's analysis, and stored
        assert list((tmp_path / "teamc").glob("*.plan"))
        parser_module._cached_plan.cache_clear()
        assert parser_module._cached_plan() == made
        fresh = []  # a new thread's parser, on a file without syntax errors
        thread = threading.Thread(target=lambda: fresh.append(
            (parser_module._parser(), parser_module.parse(SourceFile("a.team", "vm a { memory 1 GiB }")))))
        thread.start()
        thread.join()
        parser, (module, diags) = fresh[0]
        assert module is not None and diags == [] and parser._lark is None
        # Its first syntax error: Lark's parser is made, the tables with it, and the parse starts again.
        (diag,) = parser_module.parse(SourceFile("b.team", "vm a { memory }"))[1]
        assert parser._lark is None  # (that was the main thread's parser)
        parser.builder.source = source = SourceFile("b.team", "vm a { memory }")
        assert parser_module._drive(parser, source, recover=True).diagnostics == [diag]
        assert parser.tables.origin is parser._lark is not None
    finally:
        parser_module._cached_plan.cache_clear()


def test_a_grammar_the_direct_callbacks_cannot_build_is_refused_loudly():
    from lark import Lark

    from teamc import parser as parser_module

    builder = parser_module._parser().builder
    for grammar_text in ('start: "a" ["b"]', "?start: a\na: \"a\""):
        lark = Lark(grammar_text, parser="lalr", keep_all_tokens=True)
        with pytest.raises(RuntimeError, match="cannot build rule"):
            parser_module._direct_callbacks(lark, builder)


def test_pyproject_pins_lark_to_the_versions_whose_internals_the_fast_path_uses():
    import lark
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [re.sub(r"^lark", "", d) for d in project["dependencies"] if re.match(r"lark\b", d)]
    assert SpecifierSet(spec) == SpecifierSet(">=1.1.8,<1.4")  # 1.1.7 lacks lark.parsers.lalr_parser_state
    assert lark.__version__ in SpecifierSet(spec)


def test_the_keyword_table_units_and_sources_are_the_grammars():
    from teamc.keywords import KEYWORDS, SOURCE_WORDS, UNIT_BYTES, UNIT_WORDS

    g = grammar()
    assert UNIT_WORDS == tuple(UNIT_BYTES) == g.units
    assert set(SOURCE_WORDS) == g.starts["source"]
    assert set(KEYWORDS) == set(g.keywords) - set(g.units)
    blocks = {"file": "start", "vm": "_vm_item", "team": "_team_item", "nic": "_nic_item", "options": "_option"}
    for word, keyword in KEYWORDS.items():
        assert set(keyword.blocks) == {b for b, rule in blocks.items() if word in g.starts[rule]}, word


def test_a_misplaced_keyword_names_the_block_the_grammar_puts_it_in():
    starts = grammar().starts
    assert starts["_team_item"] == {"mac", "persistent", "transient"}
    for word in sorted(starts["_vm_item"]):
        assert err(f"{word} x").help == f"`{word}` belongs inside a `vm NAME {{ … }}` block", word
    for word in sorted(starts["_team_item"]):
        assert err(f"{word} x").help == f"`{word}` belongs inside a `team NAME {{ … }}` block", word


@pytest.mark.slow  # 40 MB inputs
@pytest.mark.parametrize("body", ["x" * 40_000_000, "\\/" * 10_000_000, "a\\\"" * 5_000_000],
                         ids=["plain", "escapes", "escaped-quotes"])
def test_a_long_quoted_string_compiles_in_memory_linear_in_its_size(tmp_path, body):
    # The string terminal once backtracked per character: 10 MB took 2.2 GiB, 40 MB ran out of memory.
    from test_scale import run_teamc

    path = tmp_path / "long.team"
    path.write_text(f'vm a {{\n    emulator "/{body}"\n}}\n# a comment "with a quote\n')
    size_mib = path.stat().st_size / (1024 * 1024)
    code, err, peak = run_teamc("check", "--format", "concise", str(path))
    assert (code, err) == (0, "")
    assert peak < 20 * size_mib + 60  # 20x the input, plus the interpreter and teamc themselves


def test_a_long_unterminated_string_is_one_diagnostic_in_linear_memory(tmp_path):
    from test_scale import run_teamc

    path = tmp_path / "open.team"
    path.write_text('vm a {\n    emulator "/' + "x\\\"" * 5_000_000 + "\n}\n")
    code, err, peak = run_teamc("check", "--format", "concise", str(path))
    assert code == 1 and err == f"{path}:2:14: E0001 unterminated string\n"
    assert peak < 20 * path.stat().st_size / (1024 * 1024) + 60


# --- error recovery: several syntax errors per file ------------------------------------



def errors(text: str) -> list[tuple[str, tuple[int, int], str]]:
    module, diags = parse(SourceFile("t.team", text))
    assert module is None
    return [(d.code, d.span.line_col, d.message) for d in diags]


def test_one_error_per_broken_statement():
    text = ("vm a {\n"
            "    machin q35\n"
            "    memory 2 MiB\n"
            "    team t { persistent virtio user extra; transient hostdev 0000:03:07.1 }\n"
            "    nic n { teaming sideways }\n"
            "}\n")
    assert errors(text) == [
        ("E0002", (2, 5), "unknown keyword `machin`"),
        ("E0001", (4, 37), "unexpected `extra`; expected '{', '}' or a newline or ';'"),
        ("E0002", (5, 21), "unknown keyword `sideways`"),
    ]


def test_a_bad_block_is_skipped_whole():
    text = "vm a {\n    teamx up0 { persistent virtio user; transient hostdev 0000:03:07.1 }\n    macine q35\n}\n"
    assert [e[:2] for e in errors(text)] == [("E0002", (2, 5)), ("E0002", (3, 5))]


def test_errors_in_several_vms_and_a_stray_character():
    text = "vm a { vcpus }\nvm b { memory 1 GiB \v\v }\nvm c { uuid \"open\n}\n"
    assert errors(text) == [("E0001", (1, 14), "unexpected `}`; expected a value"),
                            ("E0001", (2, 21), "unexpected character '\\x0b'"),
                            ("E0001", (3, 13), "unterminated string")]


def test_a_value_on_the_next_line_is_one_error():
    assert errors("vm a {\n    machine\n        q35\n    vcpus 2\n}\n") == [
        ("E0001", (2, 12), "unexpected end of line; expected a value")]


def test_an_unclosed_block_still_gives_the_module_to_the_language_server():
    parsed = parse_tolerant(SourceFile("t.team", "vm a {\n    team t { persistent virtio user\nvm b {}\n"))
    assert parsed.diagnostics and parsed.module is not None
    assert [vm.name.text for vm in parsed.module.vms] == ["a", "b"]
    team = parsed.module.vms[0].items[0]
    assert isinstance(team, n.Team) and team.name.text == "t"
    assert parsed.error_offsets


def test_the_number_of_errors_is_capped():
    text = "vm a {\n" + "    bogus 1\n" * (MAX_SYNTAX_ERRORS + 20) + "}\n"
    assert len(errors(text)) == MAX_SYNTAX_ERRORS


def _tokens(text: str) -> list[tuple[int, int]]:
    from teamc.parser import grammar

    out, pos = [], 0
    while pos < len(text):
        m = grammar().lexer.match(text, pos)
        if m.lastgroup not in grammar().ignored:
            out.append((pos, m.end()))
        pos = m.end()
    return out


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/*.team")), ids=lambda p: p.name)
def test_deleting_any_one_token_gives_a_few_errors_and_never_raises(path):
    # Few: a deleted newline that ends a comment comments out a block opener, and each
    # statement of that block is then misplaced; most deletions give exactly one error.
    text = path.read_text()
    counts = []
    for start, end in _tokens(text):
        broken = text[:start] + text[end:]
        module, diags = parse(SourceFile("t.team", broken))
        tolerant = parse_tolerant(SourceFile("t.team", broken))
        assert [d.message for d in tolerant.diagnostics] == [d.message for d in diags]
        if diags:
            assert module is None and len(diags) <= 6, (broken[max(0, start - 40):start + 40], diags)
            counts.append(len(diags))
    assert counts.count(1) >= 0.75 * len(counts)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncating_an_example_anywhere_never_raises(data):
    text = (ROOT / "examples" / "fleet.team").read_text()
    cut = data.draw(st.integers(0, len(text)))
    parsed = parse_tolerant(SourceFile("t.team", text[:cut]))
    assert parsed.module is not None or parsed.diagnostics
    assert len(parsed.diagnostics) <= 4


def test_only_a_syntax_error_imports_lark(tmp_path):
    """A file that parses is parsed by the cached plan alone: Lark is imported to make the plan, or to
    describe a syntax error (17 ms of every run otherwise)."""
    import subprocess
    import sys

    bad = tmp_path / "bad.team"
    bad.write_text("vm a {\n  team }\n")
    code = ("import sys; from teamc.cli import main; code = main(['check', sys.argv[1]]); "
            "print(code, 'lark' in sys.modules)")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, capture_output=True, text=True,
                           env=env, check=False).stdout.split("\n")[-2]
            for path in ("examples/seed.team", "examples/seed.team", str(bad))]
    assert runs == ["0 True", "0 False", "1 True"]  # the first run makes the plan
