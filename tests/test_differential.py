"""Differential test: random `.team` programs judged by libvirt and QEMU themselves.

`gen_team.generate(seed)` writes a program; teamc compiles it in-process. What teamc accepts is held
to the real tools, VM by VM:

- libvirt: the domain XML validates against `domain.rng`; libvirt's test driver (`virsh -c
  test://NODE.xml`, test:///default without its `test` domain) defines it and its `dumpxml` keeps every
  teamed NIC's MAC, `<teaming>`, alias, guest address, `<mtu>`, `<boot>` and `<rom>`, and every root
  port's address;
- teamc's two outputs agree: the QEMU argv has the XML's machine, memory, vCPUs, uuid, emulator, root
  ports, and per NIC its id, MAC, bus and slot, failover pairing, MTU, boot index and ROM settings;
- QEMU 7.2 starts the argv as written (paused, QMP), realizes every device where teamc put it,
  hides each primary, and reports `failover=on` on each standby;
- the failover placement probes: each primary names an earlier standby with `failover=on`, sits
  alone at function 0 of slot 0 of a pcie-root-port (`pci.0` on the opt-in `pc` layout) that keeps
  hot-plug; with the primary replaced by an emulated e1000e that QEMU hot-adds by QMP (`device_add`,
  what happens at negotiation and on the migration target), QEMU's own failover checks pass and it
  lands where the argv says (on `pc`, QEMU must refuse it: that is what E0401 warns about); and with
  the standby's failover off, the real `vfio-pci` primary gets as far as looking for its host device.

What teamc refuses must be refused for a documented reason (`REFUSAL_GROUNDS`), and a deliberately
broken program must get the code its break calls for. With `TEAMC_LIBVIRT_ORACLE` set, teamc's argv
is also compared with the argv libvirt's own generator builds from teamc's XML (see README, Tests).

`TEAMC_DIFF_PROGRAMS` (default 250) and `TEAMC_DIFF_SEED` (default 0) choose the seeds; a failure
names its seed and program, and `TEAMC_DIFF_SEED=N TEAMC_DIFF_PROGRAMS=1` replays it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from gen_team import KNOWN_UNFIXED, LIFTED_BREAKS, ROM_FILES, Program, VmModel, generate
from helpers import QTREE, VIRSH, argv_from_script, qtree_placement, rng_errors, start_qemu
from helpers import decode_option as decode
from teamc.backends.qemu import Flag, device, encode
from teamc.ir import PciAddress
from teamc.pipeline import Options, compile_source
from teamc.source import SourceFile

pytestmark = [pytest.mark.differential, pytest.mark.qemu, pytest.mark.libvirt, pytest.mark.slow]

PROGRAMS = int(os.environ.get("TEAMC_DIFF_PROGRAMS", "250"))
FIRST_SEED = int(os.environ.get("TEAMC_DIFF_SEED", "0"))
ORACLE = os.environ.get("TEAMC_LIBVIRT_ORACLE")
WORKERS = 2  # QEMU and virsh runs in parallel; the machine has 2 cores

# Why teamc may refuse a program, per code: the tool that refuses the same thing, or the README's
# documented reason for being stricter than libvirt and QEMU.
REFUSAL_GROUNDS = {
    "E0001": "not .team syntax", "E0002": "not .team syntax", "E0103": "the .team language: one per block",
    "E0104": "the .team language: a NIC needs a source", "E0307": "the .team language: one role per NIC",
    "E0311": "the .team language: a nic block is a team member",
    "E0102": "libvirt: non unique alias", "E0202": "libvirt's RNG: alias pattern",
    "E0203": "libvirt's RNG: unicast MAC pattern", "E0204": "libvirt: PCI address range / q35 topology",
    "E0205": "libvirt's RNG or QEMU: value out of range", "E0105": "README: option that does not apply",
    "E0201": "README: libvirt drops the alias silently", "E0301": "QEMU: the standby is virtio-net",
    "E0302": "libvirt: a transient is a hostdev", "E0303": "README: libvirt accepts, no failover",
    "E0304": "README: libvirt accepts, no failover", "E0305": "README: a loop has no persistent",
    "E0306": "QEMU: Cannot attach more than one primary device", "E0308": "README: net_failover pairs by MAC",
    "E0309": "README: one MAC per team", "E0310": "libvirt: a host device is assigned once",
    "E0401": "QEMU: failover primary device must be on PCIExpress bus",
    "E0402": "QEMU: failover primary must be in its own PCI slot",
    "E0403": "libvirt: address already in use / reserved by the chipset",
    "E0404": "QEMU: bus does not support hotplugging", "E0405": "QEMU: no PCIe hot-plug on that machine",
    "E0106": "libvirt: boot order used for more than one device", "E0107": "QEMU: duplicate fw_cfg file name",
    "E0406": "a guest does not scan a slot without function 0",
}

# Breaks where teamc is knowingly stricter than libvirt and QEMU, which both take the value: the
# refusal probe skips them. (break, value) -> why.
STRICTER = {
    ("multicast-mac", "00:00:00:00:00:00"): "README, E0203: an all-zero MAC; Linux replaces it with a random one, "
                                            "so net_failover cannot pair the NICs",
    ("mtu-range", "67"): "an MTU below 68 (the IPv4 minimum): the guest's virtio_net ignores it",
    ("mtu-range", "0"): "libvirt and QEMU read an MTU of 0 as none at all; teamc asks for a real one",
    ("memory-range", "1023 KiB"): "teamc's lower bound of 1 MiB; QEMU rounds less up, and no guest runs in it",
}

VFIO_MISSING = re.compile(r"vfio \S+: no such host device")


# --- compiling ---------------------------------------------------------------------


def options(program: Program) -> Options:
    vf = {key: PciAddress.parse(address) for key, address in program.vf.items()}
    return Options(qemu_syntax=program.qemu_syntax, vf=vf)


def describe(program: Program) -> str:
    extra = f" --qemu-syntax {program.qemu_syntax}" + "".join(
        f" --vf {vm}:{name}={address}" for (vm, name), address in program.vf.items())
    return f"seed {program.seed} (teamc compile{extra}):\n{program.text}"


def errors_of(result) -> list[str]:
    return [d.code for d in result.diagnostics if d.is_error]


# --- libvirt -----------------------------------------------------------------------


def _nic_facts(el) -> tuple:
    """What libvirt must keep of a teamed NIC element."""
    def attrs(tag):
        child = el.find(tag)
        return None if child is None else tuple(sorted(child.attrib.items()))
    return (el.tag, attrs("mac"), attrs("teaming"), attrs("alias"), attrs("address"), attrs("mtu"), attrs("boot"),
            attrs("rom"))


def domain_facts(xml_text: str) -> dict:
    root = etree.fromstring(xml_text.encode())
    devices = root.find("devices")
    nics = [_nic_facts(el) for el in devices if el.find("teaming") is not None]
    ports = [(c.get("index"), tuple(sorted(c.find("address").attrib.items())))
             for c in devices.findall("controller[@model='pcie-root-port']")]
    return {"nics": nics, "root ports": ports}


def _test_driver(tmp: str) -> str:
    """A libvirt test-driver connection with no domains: test:///default already has one named `test`."""
    node = Path(tmp) / "node.xml"
    node.write_text("<node/>\n", encoding="utf-8")
    return f"test://{node}"


def virsh_roundtrip(domains: dict[str, str]) -> dict[str, str]:
    """Define every domain in one test-driver connection and return each `dumpxml`."""
    with tempfile.TemporaryDirectory(prefix="teamc-diff-") as tmp:
        commands, uuids = [], []
        for text in domains.values():
            path = Path(tmp) / f"{len(commands)}.xml"
            path.write_text(text, encoding="utf-8")
            commands.append(f"define {shlex.quote(str(path))}")
            uuids.append(etree.fromstring(text.encode()).findtext("uuid"))
        # By uuid: a VM named `1` would be looked up as domain id 1.
        commands += [f"dumpxml --domain {uuid}" for uuid in uuids]
        proc = subprocess.run([VIRSH, "-q", "-c", _test_driver(tmp), "; ".join(commands)], check=False,
                              capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"virsh refused the domains: {proc.stderr.strip()}")
    dumps = re.findall(r"<domain.*?</domain>", proc.stdout, re.DOTALL)
    assert len(dumps) == len(domains), proc.stdout
    return dict(zip(domains, dumps, strict=True))


# --- the two outputs agree ------------------------------------------------------------


def devices_of(argv: list[str]) -> list[dict]:
    return [decode(arg, "driver") for i, arg in enumerate(argv) if i and argv[i - 1] == "-device"]


def _value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def _bus_addr(address, q35: bool) -> tuple[str, str]:
    bus = int(address.get("bus"), 16)
    slot, function = int(address.get("slot"), 16), int(address.get("function"), 16)
    name = f"pci.{bus}" if bus else ("pcie.0" if q35 else "pci.0")
    return name, f"0x{slot:x}" if function == 0 else f"0x{slot:x}.0x{function:x}"


def _same(value, expected) -> bool:
    """A JSON-syntax value (int/bool) or a keyval one (text) equals the expected one."""
    if isinstance(expected, bool):
        return value in (expected, "on" if expected else "off", "true" if expected else "false")
    return str(value) == str(expected)


# --- the argv as written ----------------------------------------------------------
# The judge reads the `.sh` teamc wrote, not the backend's structure, so these work on argv text.


def _edit_options(argv: list[str], flag: str, head: str, edit) -> list[str]:
    """The argv with `edit(props)` applied to the value of each `flag` option, re-encoded in its syntax."""
    out = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == flag:
            syntax = "json" if arg.startswith("{") else "keyval"
            props = edit(decode(arg, head), syntax == "json")
            if props is not None:
                arg = encode(Flag(flag, props, head), syntax)[0]
        out.append(arg)
    return out


def runnable_here(argv: list[str]) -> list[str]:
    """What must change for this machine, and only that: TCG instead of KVM, and user networking
    instead of a host bridge (no bridge or bridge helper here)."""
    argv = [("tcg" if i and argv[i - 1] == "-accel" else arg) for i, arg in enumerate(argv)]
    return _edit_options(argv, "-netdev", "type", lambda p, _: {"type": "user", "id": p["id"]}
                         if p["type"] == "bridge" else None)


def standin_argv(argv: list[str]) -> list[str]:
    """Each VFIO primary becomes an emulated e1000e keeping id, bus, addr, MAC and failover_pair_id;
    the standbys' failover is switched off, so QEMU realizes the primary at once and runs its failover
    placement checks (PCIe, own slot, hot-plug)."""
    macs = {d["id"]: d["mac"] for d in devices_of(argv) if "mac" in d}

    def edit(props: dict, json_syntax: bool) -> dict | None:
        if props["driver"] == "vfio-pci":
            props = {"driver": "e1000e", **{k: v for k, v in props.items() if k not in ("driver", "host")}}
            return props | {"mac": macs[props["failover_pair_id"]], "romfile": ""}
        if props["driver"].startswith("virtio-net-pci") and props.get("failover") in (True, "on"):
            return props | {"failover": False if json_syntax else "off"}
        return None
    return _edit_options(argv, "-device", "driver", edit)


def expected_placement(argv: list[str]) -> dict[str, tuple[str, str, str]]:
    """id -> (driver, bus, "SS.F") as the argv asks for it."""
    wanted = {}
    for props in devices_of(argv):
        slot, _, function = props["addr"].partition(".")
        wanted[props["id"]] = (props["driver"], props["bus"],
                               f"{int(slot, 16):02x}.{int(function, 16) if function else 0:x}")
    return wanted


def outputs_disagree(xml_text: str, argv: list[str]) -> list[str]:
    root = etree.fromstring(xml_text.encode())
    out = []
    q35 = "q35" in root.find("os/type").get("machine")
    checks = [
        (argv[0], root.findtext("devices/emulator"), "emulator"),
        (_value(argv, "-machine").split(",")[0].replace(",,", ","), root.find("os/type").get("machine"), "machine"),
        (_value(argv, "-m"), f"size={root.findtext('memory')}k", "memory"),
        (_value(argv, "-smp").split(",")[0], root.findtext("vcpu"), "vcpus"),
        (_value(argv, "-uuid"), root.findtext("uuid"), "uuid"),
        (_value(argv, "-accel"), {"kvm": "kvm", "qemu": "tcg"}[root.get("type")], "accel"),
    ]
    out += [f"{what}: argv {a!r}, XML {x!r}" for a, x, what in checks if a != x]
    devices = devices_of(argv)
    by_id = {d.get("id"): d for d in devices}
    for c in root.findall("devices/controller[@model='pcie-root-port']"):
        d = by_id.get(f"pci.{c.get('index')}")
        target = c.find("target")
        want = dict(zip(("bus", "addr"), _bus_addr(c.find("address"), q35), strict=True), chassis=target.get("chassis"),
                    port=int(target.get("port"), 0))
        if d is None or d["driver"] != "pcie-root-port" or not all(_same(d.get(k), v) for k, v in want.items()):
            out.append(f"root port {c.get('index')}: argv {d}, XML {want}")
    primaries = [d for d in devices if d["driver"] == "vfio-pci"]
    for el in root.find("devices"):
        teaming = el.find("teaming")
        if teaming is None:
            continue
        alias = el.find("alias")
        if teaming.get("type") == "persistent":
            d = by_id.get(alias.get("name")) if alias is not None else None
            want = {"mac": el.find("mac").get("address"), "failover": True}
        else:
            source = el.find("source/address")
            host = None
            if source is not None:
                host = str(PciAddress(*(int(source.get(k), 16) for k in ("domain", "bus", "slot", "function"))))
            d = next((p for p in primaries if p.get("host") == host), None) if host else None
            if d is None and el.get("type") == "network":  # a pool VF: given by `vf`/`--vf`, not in the XML
                d = next((p for p in primaries if p.get("failover_pair_id") == teaming.get("persistent")), None)
            want = {"failover_pair_id": teaming.get("persistent")}
        if d is None:
            out.append(f"no argv device for XML {etree.tostring(el).decode()}")
            continue
        want["bus"], want["addr"] = _bus_addr(el.find("address"), q35)
        if el.find("mtu") is not None:
            want["host_mtu"] = el.find("mtu").get("size")
        if el.find("boot") is not None:
            want["bootindex"] = el.find("boot").get("order")
        rom = el.find("rom")
        if rom is not None and rom.get("bar"):
            want["rombar"] = 1 if rom.get("bar") == "on" else 0
        if rom is not None and rom.get("enabled") == "no":
            want["romfile"] = ""
        elif rom is not None and rom.get("file"):
            want["romfile"] = rom.get("file")
        for key in ("host_mtu", "bootindex", "rombar", "romfile"):
            if key not in want and key in d:
                out.append(f"{d['id']}: argv sets {key}={d[key]!r}, the XML does not")
        bad = {k: (d.get(k), v) for k, v in want.items() if not _same(d.get(k), v)}
        if bad:
            out.append(f"{d['id']}: argv vs XML {bad}")
    return out


# --- QEMU --------------------------------------------------------------------------


def placement_problems(argv: list[str], pc: bool) -> list[str]:
    """Teamc's own reading of the argv: where each failover primary sits."""
    devices = devices_of(argv)
    out = []
    standbys = {}
    for n, d in enumerate(devices):
        if d["driver"].startswith("virtio-net-pci") and _same(d.get("failover"), True):
            standbys[d["id"]] = n
    ports = {d["id"]: d for d in devices if d["driver"] == "pcie-root-port"}
    paired = []
    for n, d in enumerate(devices):
        if "failover_pair_id" not in d:
            continue
        pair = d["failover_pair_id"]
        paired.append(pair)
        if standbys.get(pair, n) >= n:
            out.append(f"{d['id']}: failover_pair_id {pair} is no earlier virtio-net device with failover=on")
        if _same(d.get("multifunction"), True):
            out.append(f"{d['id']}: a primary is multifunction")
        if pc:
            continue
        port = ports.get(d["bus"])
        if port is None or _same(port.get("hotplug"), False):
            out.append(f"{d['id']}: bus {d['bus']} is not a hot-pluggable pcie-root-port")
        if d["addr"] not in ("0x0", "0x0.0x0"):
            out.append(f"{d['id']}: not at slot 0 function 0 of its port (addr {d['addr']})")
        if any(o is not d and o.get("bus") == d["bus"] for o in devices):
            out.append(f"{d['id']}: shares its port {d['bus']}")
    out += [f"{s}: {paired.count(s)} primaries" for s in set(paired) if paired.count(s) > 1]
    return out


def _typed(props: dict) -> dict:
    """device_add takes typed JSON values; keyval gives text."""
    ints = ("bootindex", "rombar", "port", "chassis", "host_mtu")
    return {k: int(v) if k in ints and isinstance(v, str) else v for k, v in props.items()}


def hotplug_probe(runnable: list[str]) -> tuple[int, str, list[dict], list[dict]]:
    """Start QEMU without the primaries, then hot-add each as an emulated e1000e (failover off on the
    standbys, so QEMU realizes it at once and runs its failover checks) and read `info qtree`.
    Returns (exit code, stderr, the device_add arguments, the replies: one per add, then the qtree)."""
    standin = standin_argv(runnable)
    adds, base = [], []
    for i, arg in enumerate(standin):
        if i and standin[i - 1] == "-device" and "failover_pair_id" in decode(arg, "driver"):
            adds.append(_typed(decode(arg, "driver")))
            base.pop()  # the -device before it
            continue
        base.append(arg)
    code, stderr, replies = start_qemu(base, [{"execute": "device_add", "arguments": a} for a in adds] + QTREE)
    return code, stderr, adds, replies


def qemu_problems(argv: list[str], pc: bool) -> list[str]:
    """Start QEMU three ways on one VM's argv; what went wrong, in words."""
    out = placement_problems(argv, pc)
    runnable = runnable_here(argv)
    wanted = expected_placement(runnable)
    hidden = {i for i, (driver, _, _) in wanted.items() if driver == "vfio-pci"}
    standbys = [d["id"] for d in devices_of(runnable) if _same(d.get("failover"), True)]

    # 1. As written: starts, every device where the argv puts it, primaries hidden, standbys failover=on.
    queries = QTREE + [{"execute": "qom-get", "arguments": {"path": f"/machine/peripheral/{s}", "property": "failover"}}
                       for s in standbys]
    code, stderr, replies = start_qemu(runnable, queries)
    if code != 0 or "error" in stderr.lower():
        return out + [f"QEMU refused the argv: {stderr.strip()}"]
    placed = qtree_placement(replies[0]["return"])
    for i, where in wanted.items():
        if i in hidden and i in placed:
            out.append(f"{i}: QEMU realized the primary at start-up instead of hiding it")
        elif i not in hidden and placed.get(i) != where:
            out.append(f"{i}: QEMU placed it at {placed.get(i)}, the argv says {where}")
    # Not strict: QEMU may have answered fewer queries than asked.
    out += [f"{s}: failover is {r}" for s, r in zip(standbys, replies[1:], strict=False) if r.get("return") is not True]

    # 2. Hot-plug probe: each primary as an emulated e1000e, hot-added by QMP.
    code, stderr, adds, replies = hotplug_probe(runnable)
    if code != 0:
        out.append(f"hot-plug probe: QEMU refused the argv without its primaries: {stderr.strip()}")
    elif pc:  # (the replies end with the qtree, after one per hot-add)
        out += [f"{a['id']}: QEMU hot-added a failover primary on i440fx ({r})"
                for a, r in zip(adds, replies, strict=False) if "PCIExpress" not in r.get("error", {}).get("desc", "")]
    else:
        out += [f"{a['id']}: QEMU refused to hot-add the primary: {r['error']['desc']}"
                for a, r in zip(adds, replies, strict=False) if "error" in r]
        placed = qtree_placement(replies[-1]["return"])
        out += [f"{a['id']}: hot-added at {placed.get(a['id'])}, the argv says {wanted[a['id']][1:]}"
                for a in adds if placed.get(a["id"], ())[1:] != wanted[a["id"]][1:]]

    # 3. Unhide probe: standbys' failover off, so the real vfio-pci primaries are realized now; the
    #    only acceptable complaint is the missing host device (every option of theirs was taken).
    if hidden and not pc:
        unhidden = []
        for i, arg in enumerate(runnable):
            if i and runnable[i - 1] == "-device" and decode(arg, "driver")["id"] in standbys:
                props = decode(arg, "driver")
                props["failover"] = False if arg.startswith("{") else "off"
                arg = encode(device(props), "json" if arg.startswith("{") else "keyval")[0]
            unhidden.append(arg)
        code, stderr, _ = start_qemu(unhidden)
        lines = [line for line in stderr.splitlines() if line.strip() and "warning:" not in line]
        if code == 0 or not lines or not all(VFIO_MISSING.search(line) for line in lines):
            out.append(f"unhide probe: expected only a missing VFIO host device, QEMU said: {stderr.strip()}")
    return out


# --- refusals: a real tool refuses what teamc refuses ----------------------------------


def xml_refusal(xml_text: str) -> str | None:
    """libvirt's refusal of a domain (its schema, then its test driver's define), or None."""
    errors = rng_errors(xml_text)
    if errors:
        return f"domain.rng: {errors[-1]}"
    with tempfile.TemporaryDirectory(prefix="teamc-diff-") as tmp:
        path = Path(tmp) / "domain.xml"
        path.write_text(xml_text, encoding="utf-8")
        proc = subprocess.run([VIRSH, "-q", "-c", _test_driver(tmp), f"define {shlex.quote(str(path))}"],
                              check=False, capture_output=True, text=True, timeout=60)
        if proc.returncode:
            return f"virsh define: {proc.stderr.strip()}"
        if ORACLE:
            ok, theirs = oracle_argv(path)
            if not ok:
                return f"libvirt's generator: {theirs}"
    return None


def qemu_refusal(argv: list[str]) -> str | None:
    """QEMU's refusal of an argv (at start, or when hot-adding a primary), or None."""
    runnable = runnable_here(argv)
    code, stderr, _ = start_qemu(runnable)
    if code != 0:
        return f"QEMU: {stderr.strip()}"
    code, stderr, adds, replies = hotplug_probe(runnable)
    if code != 0:
        return f"QEMU: {stderr.strip()}"
    return next((f"QEMU device_add: {r['error']['desc']}" for r in replies[:len(adds)] if "error" in r), None)


def _edit_device(argv: list[str], want, **changes) -> list[str]:
    """The argv with `changes` made to each -device for which `want(props)` holds."""
    out = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "-device" and want(props := decode(arg, "driver")):
            props.update(changes)
            syntax = "json" if arg.startswith("{") else "keyval"
            arg = encode(device({k: v for k, v in props.items() if v is not None}), syntax)[0]
        out.append(arg)
    return out


def _set(el, tag: str, **attrs) -> None:
    child = el.find(tag)
    if child is None:
        child = etree.SubElement(el, tag)
    child.attrib.update(attrs)


def _refusal(what: str, detail: str | None, xml_text: str, argv: list[str] | None, alias: str):
    """Make in teamc's outputs for the unbroken twin the change that `what` makes in the source, and
    ask the tools. Returns (probed, refusal): probed is False where there is no such change to make."""
    root = etree.fromstring(xml_text.encode())
    devices = root.find("devices")
    pers = next(el for el in devices if el.find(f"alias[@name='{alias}']") is not None)
    trans = next(el for el in devices if el.find(f"teaming[@persistent='{alias}']") is not None)

    def is_standby(props: dict) -> bool:
        return props.get("id") == alias

    def is_primary(props: dict) -> bool:
        return props.get("failover_pair_id") == alias

    xml_edit, argv_edit = None, None
    if what == "alias-chars":
        _set(pers, "alias", name=alias + detail)
        _set(trans, "teaming", persistent=alias + detail)
        xml_edit = root
    elif what == "multicast-mac":
        _set(pers, "mac", address=detail)
        _set(trans, "mac", address=detail)
        xml_edit = root
        argv_edit = argv and _edit_device(argv, is_standby, mac=detail)
    elif what == "mtu-range":
        _set(pers, "mtu", size=detail)
        xml_edit = root
        argv_edit = argv and _edit_device(argv, is_standby, host_mtu=int(detail))
    elif what == "boot-zero" and detail.isdigit():
        _set(pers, "boot", order=detail)
        xml_edit = root
        argv_edit = argv and _edit_device(argv, is_standby, bootindex=int(detail))
    elif what in ("bad-mode", "bad-bridge-name"):
        for child in pers.findall("source"):
            pers.remove(child)
        pers.set("type", "direct" if what == "bad-mode" else "bridge")
        source = etree.Element("source", dev="eth0", mode=detail) if what == "bad-mode" else etree.Element(
            "source", bridge=detail)
        pers.insert(1, source)
        xml_edit = root
    elif what == "rom-file-relative":
        _set(pers, "rom", file="virtio.rom")
        xml_edit = root
    elif what == "memory-range" and " " in detail:
        number, unit = detail.split()
        for tag in ("memory", "currentMemory"):
            root.find(tag).text, root.find(tag).attrib["unit"] = number, unit
        xml_edit = root
        if argv:
            kib = int(number) * {"KiB": 1, "MiB": 1024, "TiB": 1024**3}[unit]
            argv_edit = [f"size={kib}k" if argv[i - 1] == "-m" else a for i, a in enumerate(argv)]
    elif what in ("vcpus-zero", "vcpus-many") and detail.isdigit():
        root.find("vcpu").text = detail
        xml_edit = root
        if argv:
            argv_edit = [f"{detail},sockets={detail},cores=1,threads=1" if argv[i - 1] == "-smp" else a
                         for i, a in enumerate(argv)]
    elif what in ("unknown-machine", "machine-version") and argv:
        argv_edit = [f"{detail},usb=off" if argv[i - 1] == "-machine" else a for i, a in enumerate(argv)]
    elif what == "vf-on-pcie0" and argv:
        argv_edit = _edit_device(argv, is_primary, bus="pcie.0", addr="0x5")
    elif what == "vf-function" and argv:
        argv_edit = _edit_device(argv, is_primary, addr="0x0.0x2")
    elif what == "address-clash" and argv:
        standby = next(d for d in devices_of(argv) if is_standby(d))
        argv_edit = _edit_device(argv, is_primary, bus=standby["bus"], addr=standby["addr"])
    elif what == "reserved-slot" and argv:
        argv_edit = _edit_device(argv, is_standby, bus="pcie.0", addr=f"0x{int(detail[-4:-2], 16):x}")
    elif what == "bus-slot" and ORACLE:  # only libvirt's QEMU driver checks a root port's slot
        _set(pers, "address", slot="0x03")
        xml_edit = root
    elif what == "persistent-shared" and argv:
        primary = next(i for i, a in enumerate(argv) if i and argv[i - 1] == "-device" and is_primary(
            decode(a, "driver")))
        second = _edit_device(argv[primary - 1:primary + 1], is_primary, id="hostdev99", host="0000:7f:00.7",
                              bus="pcie.0", addr="0x1e")
        argv_edit = argv[:primary + 1] + second + argv[primary + 1:]
    if xml_edit is None and argv_edit is None:
        return False, None
    refusal = xml_refusal(etree.tostring(xml_edit, encoding="unicode")) if xml_edit is not None else None
    if refusal is None and argv_edit:
        refusal = qemu_refusal(argv_edit)
    # libvirt took it and QEMU was not asked (the VM has no plain-QEMU form): no verdict.
    return argv_edit is not None or refusal is not None, refusal


def refusal_problems(program: Program) -> list[str]:
    """A broken program's twin compiled, its outputs given the break, and the tools asked."""
    vm, alias = program.target
    result = compile_source(SourceFile("twin.team", program.twin), options(program))
    files = {a.name: a.text for a in result.artifacts}
    if result.failed or f"{vm}.xml" not in files:
        return []
    script = files.get(f"{vm}.sh")
    what, code = program.broken
    if (what, program.detail) in STRICTER:
        return []
    probed, refusal = _refusal(what, program.detail, files[f"{vm}.xml"], script and argv_from_script(script), alias)
    if probed and refusal is None:
        return [f"teamc refuses {what} ({code}), but libvirt and QEMU accept the same change to teamc's outputs"]
    return []


# --- the oracle: libvirt's own command-line generator ----------------------------------


def oracle_argv(xml_path: Path) -> tuple[bool, list[str] | str]:
    """(True, argv) or (False, libvirt's error), from the command TEAMC_LIBVIRT_ORACLE names."""
    words = shlex.split(ORACLE)
    words = [str(xml_path) if w == "{}" else w for w in words] if "{}" in words else [*words, str(xml_path)]
    proc = subprocess.run(words, check=False, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("==")]
    if proc.returncode != 0:
        return False, (proc.stdout + proc.stderr).strip()
    argv = shlex.split(" ".join(line.rstrip("\\").strip() for line in lines))
    while argv and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", argv[0]):  # the test harness's environment
        argv.pop(0)
    return True, argv


def oracle_input(xml_text: str, argv: list[str]) -> tuple[str, set[str]]:
    """teamc's XML as libvirt's test harness can build it: bridges and networks (which must exist
    on the host there) become user networking, a pool VF the concrete VF the argv uses. Returns the
    XML and the ids whose `host_mtu` is then not comparable (libvirt reads a bridge's MTU)."""
    root = etree.fromstring(xml_text.encode())
    hosts = {d.get("failover_pair_id"): d.get("host") for d in devices_of(argv) if d["driver"] == "vfio-pci"}
    skip_mtu = set()
    for el in root.findall("devices/interface"):
        teaming, alias = el.find("teaming"), el.find("alias")
        source = el.find("source")
        if teaming.get("type") == "persistent" and el.get("type") in ("bridge", "network"):
            el.set("type", "user")
            el.remove(source)
            if el.find("mtu") is not None:
                el.remove(el.find("mtu"))
                skip_mtu.add(alias.get("name"))
        elif teaming.get("type") == "transient" and el.get("type") == "network":
            el.set("type", "hostdev")
            el.set("managed", "yes")
            host = PciAddress.parse(hosts[teaming.get("persistent")])
            for child in list(source):
                source.remove(child)
            for name in list(source.attrib):
                del source.attrib[name]
            etree.SubElement(source, "address", type="pci", domain=f"0x{host.domain:04x}", bus=f"0x{host.bus:02x}",
                             slot=f"0x{host.slot:02x}", function=f"0x{host.function:x}")
    return etree.tostring(root, encoding="unicode"), skip_mtu


def oracle_problems(xml_text: str, argv: list[str], tmp: Path) -> list[str]:
    if "arch='i686'" in xml_text:  # the harness has QEMU 7.2's capabilities for x86_64 only
        return []
    path = tmp / "domain.xml"
    text, skip_mtu = oracle_input(xml_text, argv)
    path.write_text(text, encoding="utf-8")
    ok, theirs = oracle_argv(path)
    if not ok:
        return [f"libvirt's generator refused the XML: {theirs}"]
    ours = {d["id"]: d for d in devices_of(argv)}
    out = []
    for d in devices_of(theirs):
        if d.get("id") not in ours:
            continue
        mine = ours[d["id"]]
        keys = (set(mine) | set(d)) - ({"host_mtu"} if d["id"] in skip_mtu else set())
        bad = {k: (mine.get(k), d.get(k)) for k in sorted(keys)
               if not _same(mine.get(k), d.get(k)) and not _same(d.get(k), mine.get(k))}
        if bad:
            out.append(f"{d['id']}: (teamc, libvirt) {bad}")
    missing = set(ours) - {d.get("id") for d in devices_of(theirs)}
    out += [f"{i}: in teamc's argv, not in libvirt's" for i in sorted(missing)]
    return out


# --- judging a program -------------------------------------------------------------


def judge(program: Program) -> tuple[list[str], list]:
    """Problems found at once, and the checks still to run (each a callable returning problems)
    that start virsh or QEMU: the caller runs those in parallel."""
    try:
        result = compile_source(SourceFile(f"seed-{program.seed}.team", program.text), options(program))
    except Exception as exc:  # noqa: BLE001 - a crash is what this reports
        return [f"teamc crashed: {exc!r}"], []
    codes = errors_of(result)
    if codes:
        out = [f"teamc refused with {code}, which has no documented ground" for code in codes
               if code not in REFUSAL_GROUNDS]
        if program.broken is None:
            out.append(f"teamc refused a program generated valid: {_messages(result)}")
        elif program.broken[1] not in codes:
            out.append(f"break {program.broken[0]} wants {program.broken[1]}, teamc said {_messages(result)}")
        # Refused as it should be: would libvirt or QEMU refuse it too?
        return out, [lambda: refusal_problems(program)] if program.twin is not None else []
    out = []
    if program.broken is not None:
        out.append(f"teamc accepted a program broken by {program.broken[0]} (wants {program.broken[1]})")
    files = {a.name: a.text for a in result.artifacts}
    domains, later = {}, []
    for vm in program.vms:
        xml, sh = files.get(f"{vm.name}.xml"), files.get(f"{vm.name}.sh")
        if xml is None:
            out.append(f"{vm.name}: no domain XML")
            continue
        out += [f"{vm.name}: domain.rng: {e}" for e in rng_errors(xml)]
        domains[vm.name] = xml
        if (sh is not None) != vm.expressible:
            out.append(f"{vm.name}: QEMU command line {'written' if sh else 'missing'}, expected the opposite")
        if sh is None:
            continue
        argv = argv_from_script(sh)
        out += [f"{vm.name}: {p}" for p in outputs_disagree(xml, argv)]
        later.append(lambda n=vm.name, a=argv, pc=vm.family == "pc": [f"{n}: {m}" for m in qemu_problems(a, pc)])
        if ORACLE:
            later.append(lambda n=vm.name, a=argv, x=xml: [f"{n}: {m}" for m in _with_tmp(x, a)])
    if domains:
        later.append(lambda: libvirt_problems(domains))
    return out, later


def _messages(result) -> str:
    return "; ".join(f"{d.code} {d.message}" for d in result.diagnostics if d.is_error)


def libvirt_problems(domains: dict[str, str]) -> list[str]:
    try:
        dumps = virsh_roundtrip(domains)
    except AssertionError as err:
        return [str(err)]
    out = []
    for name, text in domains.items():
        ours, theirs = domain_facts(text), domain_facts(dumps[name])
        for k in ours:
            if len(ours[k]) != len(theirs[k]):
                out.append(f"{name}: libvirt's dumpxml has {len(theirs[k])} {k}, teamc's XML {len(ours[k])}")
            out += [f"{name}: libvirt's dumpxml changed {a} -> {b}"
                    for a, b in zip(ours[k], theirs[k], strict=False) if a != b]
    return out


def run_programs(seeds: range, rom_dir: str) -> dict[int, list[str]]:
    problems: dict[int, list[str]] = {}
    tasks = []
    for seed in seeds:
        found, later = judge(generate(seed, rom_dir))
        problems[seed] = found
        tasks += [(seed, check) for check in later]
    with ThreadPoolExecutor(WORKERS) as pool:
        for (seed, _), found in zip(tasks, pool.map(_run_task, tasks), strict=True):
            problems[seed] += found
    return {seed: found for seed, found in problems.items() if found}


def _run_task(task: tuple) -> list[str]:
    try:
        return task[1]()
    except Exception as exc:  # noqa: BLE001 - a judge that cannot judge is a failure to show, with its seed
        return [f"the judge failed: {exc!r}"]


def _with_tmp(xml: str, argv: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="teamc-oracle-") as tmp:
        return oracle_problems(xml, argv, Path(tmp))


@pytest.fixture(scope="module")
def rom_dir(tmp_path_factory) -> str:
    """ROM images with the names the generator uses (commas, spaces, quotes), so QEMU finds them."""
    folder = tmp_path_factory.mktemp("roms")
    for name in ROM_FILES:
        (folder / name).write_bytes(b"\x55\xaa" + bytes(510))
    return str(folder)


def test_generated_programs_agree_with_libvirt_and_qemu(rom_dir):
    seeds = range(FIRST_SEED, FIRST_SEED + PROGRAMS)
    problems = run_programs(seeds, rom_dir)
    if problems:
        report = []
        for seed, found in sorted(problems.items())[:5]:
            report.append(describe(generate(seed, rom_dir)) + "\n" + "\n".join(f"  - {p}" for p in found))
        summary = "\n".join(f"  seed {seed}: {found[0][:200]}" for seed, found in sorted(problems.items()))
        raise AssertionError(f"{len(problems)} of {len(seeds)} programs disagree with libvirt/QEMU "
                             f"(known and avoided: {sorted(KNOWN_UNFIXED)}):\n{summary}\n\n" + "\n\n".join(report))


def test_generator_covers_the_language(rom_dir):
    """The programs of the CI run use every form, source, option and break the generator knows."""
    text = "\n".join(generate(seed, rom_dir).text for seed in range(FIRST_SEED, FIRST_SEED + PROGRAMS))
    for needle in ["team ", "nic ua-", "teaming transient", "source user", "persistent virtio user",
                   "bridge ", "network ", " vf ", "direct ", " mode ", "transient hostdev", "pci-hostdev",
                   "managed no", "address 0000:", "boot ", "mtu ", "rom bar off", "rom file", "rom enabled no",
                   "virtio-transitional", "virtio-non-transitional", "machine pc", "pc-q35-", "arch i686",
                   "uuid ", "vcpus ", "memory ", "accel ", "emulator ", "allow ", '"']:
        assert needle in text, f"no generated program has {needle!r}"
    breaks = {generate(seed, rom_dir).broken for seed in range(FIRST_SEED, FIRST_SEED + PROGRAMS)}
    assert len(breaks) > 20
    assert any(generate(seed, rom_dir).vf for seed in range(FIRST_SEED, FIRST_SEED + 50))


def _judge_now(text: str, pc: bool = False) -> list[str]:
    """Judge one hand-written one-VM program (VM `a`) at once."""
    program = Program(-1, text, "json", {}, [VmModel("a", [], [], "pc" if pc else "q35")], None)
    found, later = judge(program)
    return found + [p for check in later for p in check()]


def test_judge_catches_a_broken_output():
    """The judge is not blind: a good argv with its primary moved to pcie.0, or sharing a port, is
    reported, and so is an XML that disagrees with its argv."""
    text = "vm a { team t { mac 52:54:00:00:00:01; persistent virtio user; transient hostdev 0000:03:07.1 } }\n"
    assert _judge_now(text) == []
    files = {a.name: a.text for a in compile_source(SourceFile("a.team", text), Options()).artifacts}
    argv = argv_from_script(files["a.sh"])
    assert outputs_disagree(files["a.xml"], argv) == []
    assert json.loads(next(a for a in argv if "vfio-pci" in a))["bus"] == "pci.2"
    on_root = [arg.replace('"bus":"pci.2"', '"bus":"pcie.0"').replace('"addr":"0x0"', '"addr":"0x5"')
               if "vfio-pci" in arg else arg for arg in argv]
    found = qemu_problems(on_root, pc=False)
    assert any("not a hot-pluggable pcie-root-port" in p for p in found), found
    assert any("does not support hotplugging" in p for p in found), found
    shared = [arg.replace('"bus":"pci.2"', '"bus":"pci.1"') if "vfio-pci" in arg else arg for arg in argv]
    assert any("shares its port" in p for p in qemu_problems(shared, pc=False))
    assert outputs_disagree(files["a.xml"].replace("52:54:00:00:00:01", "52:54:00:00:00:02"), argv)


# The findings of this test so far (VM `a`), each fixed: the program that showed it, and what the judge said then.
_TEAM = "team t{n} {{ persistent virtio user{p}; transient {t} 0000:03:07.{n}{v} }}"
FORMER_FINDINGS = {
    "alias-dot": ("vm a { team up.0 { persistent virtio user; transient hostdev 0000:03:07.1 } }",
                  "dumpxml changed"),
    "mtu-user-direct": ("vm a { %s }" % _TEAM.format(n=1, p=" { mtu 9000 }", t="hostdev", v=""),
                        "MTU on interface type user"),
    "pcie0-functions": ("vm a { %s; %s }" % (_TEAM.format(n=1, p=" { address 0000:00:0f.0 }", t="hostdev", v=""),
                                             _TEAM.format(n=2, p=" { address 0000:00:0f.3 }", t="hostdev", v="")),
                        "single function device can't be populated"),
    "hostdev-boot-rom": ("vm a { allow hostdev-mac-preset; allow primary-boot-or-rom; %s }" % _TEAM.format(
        n=1, p="", t="pci-hostdev", v=" { boot 1; rom bar off }"), "domain.rng"),
    "duplicate-boot": ("vm a { %s; %s }" % (_TEAM.format(n=1, p=" { boot 1 }", t="hostdev", v=""),
                                            _TEAM.format(n=2, p=" { boot 1 }", t="hostdev", v="")),
                       "boot order '1' used for more than one device"),
    "vcpus-limit": ("vm a { vcpus 289; %s }" % _TEAM.format(n=1, p="", t="hostdev", v=""), "Invalid SMP CPUs 289"),
    "machine-version": ("vm a { machine pc-q35-1.0; %s }" % _TEAM.format(n=1, p="", t="hostdev", v=""),
                        "unsupported machine type"),
    "rombar-off-twice": ("vm a { %s; %s }" % (_TEAM.format(n=1, p=" { rom bar off }", t="hostdev", v=""),
                                              _TEAM.format(n=2, p=" { rom bar off }", t="hostdev", v="")),
                         "duplicate fw_cfg file name"),
    "boot-range": ("vm a { %s }" % _TEAM.format(n=1, p=" { boot 65536 }", t="hostdev", v=""),
                   "teamc refused a program generated valid"),
}
def test_former_findings_stay_fixed():
    """Each disagreement this test found (tests/gen_team.py lists them while unfixed) stays fixed:
    teamc now refuses the construct with the code the generator expects of it, or accepts it and the
    real tools agree with every output."""
    assert len(FORMER_FINDINGS) == 9
    for key, (text, said_then) in FORMER_FINDINGS.items():
        result = compile_source(SourceFile("a.team", text + "\n"), Options())
        codes = {d.code for d in result.diagnostics if d.is_error}
        if codes:  # refused: for the reason the generator's deliberate break of that kind expects
            assert key in LIFTED_BREAKS and LIFTED_BREAKS[key][1] in codes, (key, said_then, codes)
        else:  # accepted (as pcie0-functions now is, with multifunction on function 0): the tools agree
            assert _judge_now(text + "\n") == [], key


def test_unfixed_findings_are_still_disagreements():
    """KNOWN_UNFIXED stays honest: a construct the generator avoids must still make the judge report a
    problem (its program then goes into FORMER_FINDINGS with what the judge says). When a fix lands this
    fails: remove the key from KNOWN_UNFIXED."""
    assert set(KNOWN_UNFIXED) <= set(FORMER_FINDINGS)
    for key in sorted(KNOWN_UNFIXED):
        text, says = FORMER_FINDINGS[key]
        found = _judge_now(text + "\n")
        assert any(says in p for p in found), f"{key} no longer disagrees (the judge says {found}): remove its key"
