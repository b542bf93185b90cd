"""No user string can add an element, attribute, option or argument.

Every string a user writes that reaches the XML, a QEMU keyval or JSON value,
or a shell line is either refused with a diagnostic or escaped. Hypothesis
feeds hostile strings through every such field; the real QEMU then reads back
(QMP qom-get) exactly the value that was meant, through the shell script,
JSON and keyval syntax alike.
"""

import json
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from helpers import QEMU, argv_from_script, decode_option
from teamc.pipeline import Options, compile_source
from teamc.source import SourceFile

HOSTILE = st.one_of(
    st.text(alphabet=st.sampled_from(list(",'\"<>&;$()`\\|{}#=: \n\t\x00\u00e9\u2028\ufffe-_.ab/")), min_size=1,
            max_size=40),
    st.text(min_size=1, max_size=30),
    st.sampled_from(["$(touch pwned)", "a,b=c", "x' y", '"><domain/>', "&amp;", "a\nb", "-device", "a,,b",
                     "\u00fcber", "x" * 3000, "a\x00b", "';rm -rf /;'"]),
)


def quote(text: str) -> str:
    """A .team string literal for any text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def program(bridge="br0", rom="/x.rom", emulator="/usr/bin/qemu-system-x86_64", network="net0", dev="eth0",
            machine="q35") -> str:
    return (f"vm web {{ machine {quote(machine)}; emulator {quote(emulator)}\n"
            f"  team a {{ persistent virtio bridge {quote(bridge)} {{ rom file {quote(rom)} }}; "
            f"transient hostdev 0000:03:07.1 }}\n"
            f"  team b {{ persistent virtio network {quote(network)} bridge {quote(bridge)}; "
            f"transient hostdev 0000:03:07.2 }}\n"
            f"}}\nvm db {{ team c {{ persistent virtio direct {quote(dev)} mode bridge; "
            f"transient hostdev 0000:03:07.3 }} }}\n")


def outputs(text: str, syntax: str):
    result = compile_source(SourceFile("t.team", text), Options(qemu_syntax=syntax))
    return result, {a.name: a.text for a in result.artifacts}


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["bridge", "rom", "emulator", "network", "dev", "machine"]), value=HOSTILE,
       syntax=st.sampled_from(["json", "keyval"]))
def test_hostile_strings_are_refused_or_escaped(field, value, syntax):
    if field == "emulator":
        value = "/" + value
    result, files = outputs(program(**{field: value}), syntax)
    if result.failed:
        codes = {d.code for d in result.diagnostics if d.is_error}
        assert codes <= {"E0205", "E0405"}, result.diagnostics
        return
    web = etree.fromstring(files["web.xml"].encode())
    db = etree.fromstring(files["db.xml"].encode())
    # The XML has exactly the elements teamc writes, holding exactly the value.
    assert [el.tag for el in web.find("devices")].count("interface") == 4
    found = {
        "bridge": web.find("devices/interface/source").get("bridge"),
        "rom": web.find("devices/interface/rom").get("file"),
        "emulator": web.findtext("devices/emulator"),
        "network": web.findall("devices/interface")[2].find("source").get("network"),
        "dev": db.find("devices/interface/source").get("dev"),
        "machine": web.find("os/type").get("machine"),
    }
    assert found[field] == value
    # The shell script runs exactly the argv teamc built.
    argv = argv_from_script(files["web.sh"])
    assert argv[0] == found["emulator"]
    assert argv.count("-device") == 9 and argv.count("-netdev") == 2
    devices = [decode_option(argv[i + 1], "driver") for i, a in enumerate(argv) if a == "-device"]
    netdevs = [decode_option(argv[i + 1], "type") for i, a in enumerate(argv) if a == "-netdev"]
    virtio = [d for d in devices if d["driver"] == "virtio-net-pci"]
    assert virtio[0]["romfile"] == found["rom"]
    assert [n["br"] for n in netdevs] == [found["bridge"], found["bridge"]]
    machine = argv[argv.index("-machine") + 1]
    assert machine.replace(",,", "\0").split(",")[0].replace("\0", ",") == found["machine"]


ROM_NAMES = ["a,b.rom", "it's.rom", '"quoted".rom', "$(touch pwned).rom", "sp ace.rom", "\u00fcber-\u00f1.rom",
             ";rm -rf x;.rom", "back\\slash.rom", "-device.rom", "a,,b=c,id=evil.rom", "x" * 200 + ".rom"]


@pytest.fixture(scope="module")
def rom_source():
    for candidate in ("/usr/share/qemu/efi-virtio.rom", "/usr/lib/ipxe/qemu/efi-virtio.rom"):
        if shutil.os.path.exists(candidate):
            return candidate
    pytest.fail("QEMU's efi-virtio.rom is needed (package ipxe-qemu)")


@pytest.mark.qemu
@pytest.mark.parametrize("syntax", ["json", "keyval"])
def test_qemu_reads_back_exactly_the_hostile_value(tmp_path, rom_source, syntax):
    """Through the generated shell script, the real QEMU sees exactly the intended romfile."""
    for i, name in enumerate(ROM_NAMES):
        rom = tmp_path / name
        shutil.copy(rom_source, rom)
        text = (f"vm web {{ team a {{ persistent virtio user {{ rom file {quote(str(rom))} }}; "
                f"transient hostdev 0000:03:07.1 }} }}\n")
        result, files = outputs(text, syntax)
        assert not result.failed, result.diagnostics
        script = tmp_path / f"web{i}.sh"
        script.write_text(files["web.sh"])
        qmp = ['{"execute":"qmp_capabilities"}',
               '{"execute":"qom-get","arguments":{"path":"/machine/peripheral/ua-a","property":"romfile"}}',
               '{"execute":"quit"}']
        proc = subprocess.run(["sh", str(script), "-accel", "tcg", "-S", "-qmp", "stdio"], cwd=tmp_path,
                              input="\n".join(qmp) + "\n", capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, (name, proc.stderr)
        replies = [json.loads(line) for line in proc.stdout.splitlines() if '"return"' in line]
        assert replies[1]["return"] == str(rom), name
    assert not (tmp_path / "pwned").exists()


@pytest.mark.qemu
def test_a_hostile_emulator_path_is_one_shell_word(tmp_path):
    odd = tmp_path / "qemu $(touch pwned) 'x' \"y\"; z"
    odd.symlink_to(QEMU)
    _, files = outputs(f"vm web {{ emulator {quote(str(odd))}\n"
                       "  team a { persistent virtio user; transient hostdev 0000:03:07.1 } }\n", "json")
    script = tmp_path / "web.sh"
    script.write_text(files["web.sh"])
    proc = subprocess.run(["sh", str(script), "-accel", "tcg", "-S", "-qmp", "stdio"], cwd=tmp_path,
                          input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "pwned").exists()
    assert argv_from_script(files["web.sh"])[0] == str(odd)
