"""Seeded random `.team` programs for the differential test (`tests/test_differential.py`).

`generate(seed)` builds one program from `random.Random(seed)`, so a failing seed is reproduced by
number alone. A program has one to three VMs, each with one to four teams written in either surface
form (a `team` block, or two `nic` blocks linked by alias), every persistent source (`user`, `bridge`,
`network` with and without `bridge`, `direct` with every macvtap mode), every transient form (`hostdev`,
`pci-hostdev`, a hostdev-pool `network` with and without `vf`, or with the VF given by `--vf`), every
per-NIC option (`address`, `boot`, `mtu`, `rom bar|file|enabled`, `managed`), derived and explicit
MACs, uuids, machine types, both arches, memory units, vCPU counts, `allow`, quoted values and both
QEMU syntaxes. About one program in six carries one deliberate mistake (`Program.broken`) with the
diagnostic code teamc must give it.

The generator does not decide what libvirt or QEMU accept: it draws values near their limits as well,
and the judge asks the real tools. Only `KNOWN_UNFIXED` keeps it away from constructs where teamc is
known to disagree with them and the fix has not landed on this branch yet.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

# Constructs on which teamc and libvirt/QEMU are known to disagree (each an entry in the project's
# findings list), kept out of generated programs until the fix lands on this branch. Remove a key
# once its fix is merged: the generator then produces the construct (as a valid program where the
# tools take it, as a deliberate break, LIFTED_BREAKS, where they refuse it) and the judge holds
# teamc to the real tools on it.
KNOWN_UNFIXED: dict[str, str] = {}  # every finding so far is fixed: see FORMER_FINDINGS in test_differential

# Breaks that exist once a KNOWN_UNFIXED key is gone: the construct the tools refuse, and teamc's code.
LIFTED_BREAKS = {
    "alias-dot": ("alias-dot", "E0202"), "mtu-user-direct": ("mtu-on-user", "E0105"),
    "pcie0-functions": ("lone-function", "E0406"), "duplicate-boot": ("duplicate-boot", "E0106"),
    "vcpus-limit": ("vcpus-many", "E0205"), "machine-version": ("machine-version", "E0405"),
    "rombar-off-twice": ("rombar-off-twice", "E0107"),
}
Q35_VERSIONS = ["2.4", "2.12", "4.0.1", "5.2", "6.2", "7.0", "7.1", "7.2"]
I440FX_VERSIONS = ["1.4", "2.0", "2.12", "4.2", "6.0", "7.2"]
BAD_VERSIONS = ["1.0", "7.3", "8.0", "99.9"]  # not machines of QEMU 7.2
MACVTAP_MODES = ["vepa", "bridge", "private", "passthrough"]
MODELS = ["virtio", "virtio", "virtio", "virtio-transitional", "virtio-non-transitional"]
# Words that are keywords elsewhere in the grammar: names and values may use them.
KEYWORD_NAMES = ["team", "nic", "user", "bridge", "network", "direct", "vf", "mode", "managed", "yes", "rom", "mac"]

# One deliberate mistake: (name, the code teamc must report).
BREAKS = [
    ("mac-mismatch", "E0308"), ("alias-prefix", "E0201"), ("alias-chars", "E0202"), ("target-missing", "E0303"),
    ("target-transient", "E0304"), ("persistent-shared", "E0306"), ("teaming-both", "E0307"),
    ("mac-duplicate", "E0309"), ("vf-duplicate", "E0310"), ("teaming-missing", "E0311"),
    ("multicast-mac", "E0203"), ("bad-model", "E0301"), ("transient-bridge", "E0302"),
    ("mtu-on-vf", "E0105"), ("managed-on-bridge", "E0105"), ("vf-on-persistent", "E0105"),
    ("mtu-range", "E0205"), ("boot-zero", "E0205"), ("bad-mode", "E0205"), ("bad-bridge-name", "E0205"),
    ("rom-file-relative", "E0205"), ("memory-range", "E0205"), ("vcpus-zero", "E0205"),
    ("pc-no-allow", "E0401"), ("vf-on-pcie0", "E0404"), ("vf-function", "E0402"), ("address-clash", "E0403"),
    ("reserved-slot", "E0403"), ("bus-slot", "E0204"), ("unknown-machine", "E0405"), ("duplicate-setting", "E0103"),
    ("duplicate-name", "E0102"), ("missing-source", "E0104"), ("syntax", "E0001"),
]


@dataclass
class NicModel:
    """One NIC of a team, as the generator decided it."""

    source: str  # the text after `source` / `persistent MODEL` / `transient`
    kind: str  # user bridge network direct hostdev pci-hostdev pool
    options: list[str] = field(default_factory=list)  # `mtu 9000`, `address …`, …
    host: str | None = None  # the VF's host address (transients)


@dataclass
class TeamModel:
    name: str  # team name (team form) or the persistent NIC's name (nic form, starts with ua-)
    vf_name: str  # the transient NIC's name in the nic form
    form: str  # "team" | "nic"
    mac: str | None
    persistent: NicModel
    transient: NicModel
    model: str
    mac_on: str = "both"  # nic form: which NICs write the MAC ("both", "persistent", "transient")
    extra: list[str] = field(default_factory=list)  # further `nic` blocks (deliberate breaks only)
    drop: tuple[str, ...] = ()  # starts of lines left out of the VF's `nic` block (deliberate breaks only)
    transient_names: str | None = None  # what the VF's `teaming transient` names, if not the persistent


@dataclass
class VmModel:
    name: str
    settings: list[str]
    teams: list[TeamModel]
    family: str  # q35 | pc
    expressible: bool = True  # every NIC has a plain-QEMU form, so a .sh is expected


@dataclass
class Program:
    seed: int
    text: str
    qemu_syntax: str  # --qemu-syntax
    vf: dict  # --vf: (vm, name) -> "DDDD:BB:SS.F"
    vms: list[VmModel]
    broken: tuple[str, str] | None  # (what was broken, the code teamc must report)
    twin: str | None = None  # a broken program's text without its break
    target: tuple[str, str] | None = None  # the broken team's VM and persistent alias in the twin
    detail: str | None = None  # the broken value, as libvirt/QEMU would get it


class _Gen:
    def __init__(self, seed: int, rom_dir: str, known_unfixed: frozenset[str]) -> None:
        self.rng = random.Random(seed)
        self.rom_dir = rom_dir
        self.known = known_unfixed
        self.macs: set[str] = set()
        self.hosts: set[str] = set()

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    # --- values ---------------------------------------------------------------

    def quote(self, text: str) -> str:
        """A value as a bare word, or quoted (always when it has a space)."""
        if any(c in text for c in " \t;#{}'") or self.chance(0.15):
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return text

    def name(self, taken: set[str], prefix: str = "") -> str:
        chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
        while True:
            if self.chance(0.1):
                base = self.pick(KEYWORD_NAMES)
            else:
                base = self.pick("abcdefghijklmnopqrstuvwxyz_0123456789") + "".join(
                    self.pick(chars) for _ in range(self.rng.randint(0, 10)))
            name = prefix + base
            # A team `x` has the alias `ua-x`: a name and its `ua-` form are one name. Only the
            # prefix given may start a name.
            key = name.removeprefix("ua-")
            if key not in taken and (prefix or not name.startswith(("ua-", "vf-"))):
                taken.add(key)
                return name

    def mac(self) -> str:
        while True:
            if self.chance(0.6):
                octets = [0x52, 0x54, 0x00] + [self.rng.randrange(256) for _ in range(3)]
            else:
                octets = [self.rng.randrange(128) * 2] + [self.rng.randrange(256) for _ in range(5)]
            mac = ":".join(f"{o:02x}" for o in octets)
            if any(octets) and mac not in self.macs:
                self.macs.add(mac)
                return mac.upper() if self.chance(0.1) else mac

    def host(self) -> str:
        while True:
            domain = 0 if self.chance(0.8) else self.rng.randrange(0x10000)
            address = (f"{domain:04x}:{self.rng.randrange(256):02x}:{self.rng.randrange(32):02x}"
                       f".{self.rng.randrange(8)}")
            if address not in self.hosts:
                self.hosts.add(address)
                return address

    def managed(self) -> str:
        return self.pick(["", "", " managed", " managed yes", " managed no"])

    # --- a VM -----------------------------------------------------------------

    def vm(self, taken_vms: set[str]) -> VmModel:
        name = self.name(taken_vms)
        if self.chance(0.1):  # VM names may also use `+`
            name += "+1"
        settings: list[str] = []
        family = "q35"
        roll = self.rng.random()
        if roll < 0.3:
            pass
        elif roll < 0.55:
            settings.append("machine q35")
        elif roll < 0.85:
            settings.append(f"machine pc-q35-{self.pick(Q35_VERSIONS)}")
        else:
            family = "pc"
            settings.append(self.pick(["machine pc", f"machine pc-i440fx-{self.pick(I440FX_VERSIONS)}"]))
            settings.append(self.pick(["allow pc-machine-team", "allow E0401"]))
        if self.chance(0.3):
            settings.append("uuid " + "-".join(
                "".join(self.pick("0123456789abcdefABCDEF") for _ in range(n)) for n in (8, 4, 4, 4, 12)))
        if self.chance(0.3):
            settings.append("arch " + self.pick(["x86_64", "i686"]))
        if self.chance(0.6):
            settings.append(self.pick(["memory 214 MiB", "memory 1 GiB", "memory 2 G", "memory 524288 KiB",
                                       "memory 1 MiB", "memory 4096 k", "memory 64 MiB", "memory 3 GB",
                                       "memory 16777216 B", "memory 8 GiB", "memory 1000 MB"]))
        if self.chance(0.5):
            counts = [1, 2, 3, 4, 8, 16, 64, 255]
            settings.append(f"vcpus {self.pick(counts)}")
        if self.chance(0.2):
            settings.append("accel " + self.pick(["kvm", "tcg"]))
        names: set[str] = set()
        # Most VMs keep to sources with a plain-QEMU form, so that QEMU judges them too.
        libvirt_only = self.chance(0.2)
        teams = [self.team(names, libvirt_only) for _ in range(self.rng.randint(1, 4))]
        # `rom bar off` on one virtio NIC of the VM only: two clash in QEMU's fw_cfg (a break when fixed).
        for team in [t for t in teams if "rom bar off" in t.persistent.options][1:]:
            team.persistent.options.remove("rom bar off")
        self.place(teams, family)
        self.boot_orders(teams)
        vm = VmModel(name, settings, teams, family)
        vm.expressible = all(self.expressible(t) for t in teams)
        # `emulator` must match the arch for QEMU to start it; write it out sometimes.
        if self.chance(0.15):
            i686 = "arch i686" in settings
            settings.append("emulator " + ("/usr/bin/qemu-system-i386" if i686 else "/usr/bin/qemu-system-x86_64"))
        for code in ("hostdev-mac-preset", "no-qemu-backend", "vf-unresolved", "primary-boot-or-rom"):
            if self.chance(0.15):
                settings.append(f"allow {code}")
        return vm

    def expressible(self, team: TeamModel) -> bool:
        p, t = team.persistent, team.transient
        if p.kind == "direct" or (p.kind == "network" and " bridge " not in f" {p.source} "):
            return False
        return t.kind != "pool" or t.host is not None

    def team(self, taken: set[str], libvirt_only: bool = False) -> TeamModel:
        """A team; `taken` holds the team and NIC names of its VM. Only with `libvirt_only` may it
        use the sources that have no plain-QEMU form (macvtap, a network or pool libvirt resolves)."""
        form = self.pick(["team", "nic"])
        if form == "team":
            name = self.name(taken, "ua-" if self.chance(0.2) else "")
        else:
            name = self.name(taken, "ua-")
        vf_name = self.name(taken, "vf-" if self.chance(0.5) else "")
        mac = self.mac() if self.chance(0.7) else None
        model = self.pick(MODELS)

        kind = self.pick(["user", "user", "bridge", "bridge", "bridge", "network", "network"]
                         + ["network", "direct", "direct"] * libvirt_only)
        if kind == "user":
            src = "user"
        elif kind == "bridge":
            src = "bridge " + self.quote(self.pick(["br0", "virbr0", "br-lan", "br_1", "br.2", "br 3", "a:b/c"]))
        elif kind == "network":
            src = "network " + self.quote(self.pick(["default", "net-a", "net 2", "ünï"]))
            if not libvirt_only or self.chance(0.5):
                src += " bridge " + self.quote(self.pick(["virbr0", "br0", "br 9"]))
        else:
            src = "direct " + self.quote(self.pick(["eth0", "enp94s0f0", "en.1", "bond0"]))
            if self.chance(0.7):
                src += " mode " + self.pick(MACVTAP_MODES)
        persistent = NicModel(src, kind)
        if self.chance(0.3) and kind not in ("user", "direct"):
            persistent.options.append(f"mtu {self.pick([68, 576, 1500, 9000, 65535])}")
        if self.chance(0.2):
            persistent.options.append(self.rom())

        tkind = self.pick(["hostdev", "hostdev", "pci-hostdev", "pool"])
        host = self.host()
        if tkind == "hostdev":
            tsrc = f"hostdev {host}{self.managed()}"
        elif tkind == "pci-hostdev":
            tsrc = f"pci-hostdev {host}{self.managed()}"
        else:
            tsrc = "network " + self.quote(self.pick(["pool", "sriov-pool", "vfs 1"]))
            if self.chance(0.5):
                tsrc += f" vf {host}"
            elif not libvirt_only or self.chance(0.5):
                host = f"--vf {host}"  # given on the command line: `generate` moves it into Program.vf
            else:
                self.hosts.discard(host)
                host = None
        transient = NicModel(tsrc, tkind, host=host)
        if (tkind != "pci-hostdev" or "hostdev-boot-rom" not in self.known) and self.chance(0.2):
            transient.options.append(self.rom())
        if tkind in ("hostdev", "pci-hostdev") and "managed" not in tsrc and self.chance(0.2):
            transient.options.append(self.pick(["managed", "managed yes", "managed no"]))
        team = TeamModel(name, vf_name, form, mac, persistent, transient, model)
        if form == "nic" and mac is not None:
            team.mac_on = self.pick(["both", "both", "persistent", "transient"])
        return team

    def rom(self) -> str:
        return self.pick(["rom bar on", "rom bar off", "rom enabled no", "rom enabled yes",
                          f"rom file {self.quote(self.rom_dir + '/' + self.pick(ROM_FILES))}"])

    def place(self, teams: list[TeamModel], family: str) -> None:
        """Pin some guest addresses, without clashes (a clash is a deliberate break instead)."""
        used: set[tuple[int, int, int]] = set()
        for team in teams:
            for nic in (team.persistent, team.transient):
                if not self.chance(0.25):
                    continue
                if family == "pc":
                    slot = self.rng.randint(2, 0x1F)
                    where = (0, slot, 0)
                elif nic is team.transient or self.chance(0.5):
                    where = (self.rng.randint(1, 0x20), 0, 0)  # a root port bus, slot 0
                else:
                    slot = self.rng.randint(2, 0x1E)
                    fn = 0 if "pcie0-functions" in self.known else self.pick([0, 0, 1, 3, 7])
                    where = (0, slot, fn)
                if where in used or any(u[0] == where[0] != 0 for u in used) or \
                        (where[0] == 0 and any(u[:2] == where[:2] for u in used) and "pcie0-functions" in self.known):
                    continue
                if where[2] and (0, where[1], 0) not in used:  # a function of a slot whose function 0 is taken
                    continue
                used.add(where)
                nic.options.append("address " + self.pci(where))

    def pci(self, where: tuple[int, int, int]) -> str:
        bus, slot, fn = where
        text = f"{bus:02x}:{slot:02x}.{fn:x}"
        return text if self.chance(0.2) else "0000:" + text

    def boot_orders(self, teams: list[TeamModel]) -> None:
        used: set[int] = set()
        for team in teams:
            for nic in (team.persistent, team.transient):
                if nic is team.transient and nic.kind == "pci-hostdev" and "hostdev-boot-rom" in self.known:
                    continue
                if self.chance(0.2):
                    order = self.pick([1, 2, 3, 10, 65535] + ([] if "boot-range" in self.known else [65536, 2**31 - 1]))
                    if order in used:
                        continue
                    used.add(order)
                    nic.options.append(f"boot {order}")

    # --- text -----------------------------------------------------------------

    def render_team(self, vm: VmModel, team: TeamModel) -> str:
        p, t = team.persistent, team.transient
        if team.form == "team":
            lines = []
            if team.mac:
                lines.append(f"mac {team.mac}")
            lines.append(f"persistent {team.model} {p.source}" + self.options_block(p.options))
            lines.append(f"transient {t.source}" + self.options_block(t.options))
            if self.chance(0.2):
                self.rng.shuffle(lines)
            return self.block(f"team {self.quote(team.name)}", lines)
        p_lines = [f"source {p.source}", "teaming persistent", *p.options]
        if team.model != "virtio" or self.chance(0.5):
            p_lines.insert(0, f"model {team.model}")
        target = team.name if team.transient_names is None else team.transient_names
        t_lines = [f"source {t.source}", f"teaming transient {self.quote(target)}", *t.options]
        if team.mac and team.mac_on in ("both", "persistent"):
            p_lines.append(f"mac {team.mac}")
        if team.mac and team.mac_on in ("both", "transient"):
            t_lines.append(f"mac {team.mac}")
        for lines in (p_lines, t_lines):
            if self.chance(0.3):
                self.rng.shuffle(lines)
        t_lines = [line for line in t_lines if not line.startswith(team.drop)]
        return "\n    ".join([self.block(f"nic {self.quote(team.name)}", p_lines),
                              self.block(f"nic {self.quote(team.vf_name)}", t_lines), *team.extra])

    def options_block(self, options: list[str]) -> str:
        if not options:
            return " {}" if self.chance(0.05) else ""
        return " { " + "; ".join(options) + " }"

    def block(self, head: str, lines: list[str]) -> str:
        if self.chance(0.5):
            return head + " { " + "; ".join(lines) + " }"
        return head + " {\n" + "".join(f"        {line}\n" for line in lines) + "    }"

    def render(self, vms: list[VmModel]) -> str:
        out = []
        for vm in vms:
            items = [*vm.settings, *(self.render_team(vm, t) for t in vm.teams)]
            out.append(f"vm {self.quote(vm.name)} {{\n" + "".join(f"    {item}\n" for item in items) + "}\n")
        return "\n".join(out)


ROM_FILES = ["virtio.rom", "with,comma.rom", "with space.rom", "quote'd.rom"]


def generate(seed: int, rom_dir: str = "/usr/share/teamc-difftest", known_unfixed=None) -> Program:
    """The program of `seed`. ROM files are named under `rom_dir` (the judge creates them there)."""
    known = frozenset(KNOWN_UNFIXED if known_unfixed is None else known_unfixed)
    g = _Gen(seed, rom_dir, known)
    taken: set[str] = set()
    vms = []
    for _ in range(g.rng.choice([1, 1, 1, 2, 2, 3])):
        vms.append(g.vm(taken))
    vf = {}
    for vm in vms:
        for team in vm.teams:
            t = team.transient
            if t.host and t.host.startswith("--vf "):
                t.host = t.host.removeprefix("--vf ")
                vf[(vm.name, team.name if team.form == "team" else team.vf_name)] = t.host
    broken, twin, target, detail = None, None, None, None
    if g.chance(1 / 6):
        broken = g.rng.choice(BREAKS + [b for key, b in LIFTED_BREAKS.items() if key not in known])
        twin = _Gen(seed + 1_000_003, rom_dir, known).render(copy.deepcopy(vms))
        target, detail = _break(g, vms, broken[0])
    text = g.render(vms)
    if broken and broken[0] == "syntax":  # at the start of a line, so never inside a quoted value
        lines = text.split("\n")
        at = g.rng.randrange(len(lines))
        lines[at] = g.pick(["{ ", '"', "team { "]) + lines[at]
        text = "\n".join(lines)
    return Program(seed, text, g.pick(["json", "keyval"]), vf, vms, broken, twin, target, detail)


def _break(g: _Gen, vms: list[VmModel], what: str) -> tuple[tuple[str, str], str | None]:
    """Introduce one mistake into the model (the syntax break is applied to the text). Returns the
    broken team's VM and persistent alias, and the broken value where the judge needs it."""
    vm = g.pick(vms)
    team = g.pick(vm.teams)
    p, t = team.persistent, team.transient
    target = (vm.name, team.name if team.name.startswith("ua-") else "ua-" + team.name)
    value = None

    def nic_form() -> None:
        team.form = "nic"
        if not team.name.startswith("ua-"):
            team.name = "ua-" + team.name

    if what == "mac-mismatch":
        nic_form()
        team.mac, team.mac_on = team.mac or g.mac(), "persistent"
        t.options.append(f"mac {g.mac()}")
    elif what == "alias-prefix":
        nic_form()
        team.name = "x" + team.name
    elif what == "alias-chars":
        value = g.pick(["!", "@", "é", "$x"])
        team.name += value
    elif what == "target-missing":
        nic_form()
        team.transient_names = "ua-nowhere"
    elif what == "target-transient":
        nic_form()
        team.extra.append(f"nic {team.vf_name}2 {{ source hostdev {g.host()}; teaming transient {team.vf_name} }}")
    elif what == "persistent-shared":
        nic_form()
        team.extra.append(f"nic {team.vf_name}2 {{ source hostdev {g.host()}; teaming transient {team.name} }}")
    elif what == "teaming-both":
        nic_form()
        p.options.append(f"teaming transient {team.vf_name}")
    elif what == "mac-duplicate":
        others = [x for v in vms for x in v.teams if x is not team]
        if not others:
            vm.teams.append(g.team({x.name for x in vm.teams} | {x.vf_name for x in vm.teams}))
            others = [vm.teams[-1]]
        mac = g.mac()
        team.mac, team.mac_on = mac, "both"
        others[0].mac, others[0].mac_on = mac, "both"
    elif what == "vf-duplicate":
        team.transient = NicModel(f"hostdev {g.pick(sorted(g.hosts))}", "hostdev")
        other = g.pick([x for v in vms for x in v.teams])
        other.transient = NicModel(team.transient.source, "hostdev")
        if other is team:
            vm.teams.append(g.team({x.name for x in vm.teams} | {x.vf_name for x in vm.teams}))
            vm.teams[-1].transient = NicModel(team.transient.source, "hostdev")
    elif what == "teaming-missing":
        nic_form()
        team.drop = ("teaming transient ",)
    elif what == "multicast-mac":
        value = g.pick(["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "53:54:00:00:00:01"])
        team.mac, team.mac_on = value, "both"
    elif what == "bad-model":
        team.model = g.pick(["e1000", "rtl8139", "e1000e"])
    elif what == "transient-bridge":
        team.transient = NicModel("bridge br0", "bridge")
    elif what == "mtu-on-vf":
        t.options.append("mtu 1500")
    elif what == "managed-on-bridge":
        team.persistent = NicModel("bridge br0", "bridge", options=["managed"])
    elif what == "vf-on-persistent":
        team.persistent = NicModel("network default vf 0000:01:00.1", "network")
    elif what == "mtu-range":
        value = str(g.pick([0, 67, 65536, -1]))
        p.options = [o for o in p.options if not o.startswith("mtu")] + [f"mtu {value}"]
    elif what == "boot-zero":
        value = str(g.pick([0, 2147483648, "x"]))
        p.options = [o for o in p.options if not o.startswith("boot")] + [f"boot {value}"]
    elif what == "bad-mode":
        value = g.pick(["bridged", "vepa2", "Bridge"])
        team.persistent = NicModel("direct eth0 mode " + value, "direct")
    elif what == "bad-bridge-name":
        value = g.pick(["br;0", "br$", "br\t0", "br'0"])
        text = '"br\\t0"' if "\t" in value else g.quote(value)  # a tab only as the escape in a quoted value
        team.persistent = NicModel("bridge " + text, "bridge")
    elif what == "rom-file-relative":
        p.options = [o for o in p.options if not o.startswith("rom")] + ["rom file virtio.rom"]
    elif what == "memory-range":
        vm.settings = [s for s in vm.settings if not s.startswith("memory")]
        value = g.pick(["1023 KiB", "17 TiB", "0 MiB", "512"])
        vm.settings.append(f"memory {value}")
    elif what == "vcpus-zero":
        vm.settings = [s for s in vm.settings if not s.startswith("vcpus")]
        value = g.pick(["0", "4097", "two"])
        vm.settings.append(f"vcpus {value}")
    elif what == "pc-no-allow":
        vm.settings = [s for s in vm.settings if not s.startswith(("machine", "allow pc-machine", "allow E0401"))]
        vm.settings.append(g.pick(["machine pc", "machine pc-i440fx-7.2"]))
        for x in vm.teams:  # q35 pins are not pc pins
            for nic in (x.persistent, x.transient):
                nic.options = [o for o in nic.options if not o.startswith("address")]
    elif what in ("vf-on-pcie0", "vf-function", "address-clash", "reserved-slot", "bus-slot"):
        vm.settings = [s for s in vm.settings if not s.startswith(("machine", "allow pc-machine", "allow E0401"))]
        for x in vm.teams:
            for nic in (x.persistent, x.transient):
                nic.options = [o for o in nic.options if not o.startswith("address")]
        if what == "vf-on-pcie0":
            t.options.append("address 0000:00:05.0")
        elif what == "vf-function":
            t.options.append("address 0000:05:00.2")
        elif what == "address-clash":
            p.options.append("address 0000:07:00.0")
            t.options.append("address 0000:07:00.0")
        elif what == "reserved-slot":
            value = g.pick(["0000:00:00.0", "0000:00:1f.0"])
            p.options.append(f"address {value}")
        else:
            p.options.append("address 0000:05:03.0")
    elif what == "unknown-machine":
        vm.settings = [s for s in vm.settings if not s.startswith(("machine", "allow pc-machine", "allow E0401"))]
        value = g.pick(["microvm", "isapc", "virt", "q35-7.2"])
        vm.settings.append(f"machine {value}")
    elif what == "duplicate-setting":
        vm.settings += ["memory 1 GiB", "memory 2 GiB"] if g.chance(0.5) else ["vcpus 1", "vcpus 2"]
    elif what == "duplicate-name":
        clone = TeamModel(team.name, team.vf_name + "x", team.form, None,
                          NicModel("user", "user"), NicModel(f"hostdev {g.host()}", "hostdev"), "virtio")
        vm.teams.append(clone)
    elif what == "alias-dot":
        team.name += ".0"
    elif what == "mtu-on-user":
        team.persistent = NicModel("user", "user", options=["mtu 1500"])
    elif what == "lone-function":
        vm.settings = [s for s in vm.settings if not s.startswith(("machine", "allow pc-machine", "allow E0401"))]
        for x in vm.teams:
            for nic in (x.persistent, x.transient):
                nic.options = [o for o in nic.options if not o.startswith("address")]
        p.options.append("address 0000:00:0f.3")
    elif what == "duplicate-boot":
        for x in vm.teams:
            x.persistent.options = [o for o in x.persistent.options if not o.startswith("boot")]
        if len(vm.teams) < 2:
            vm.teams.append(g.team({x.name for x in vm.teams} | {x.vf_name for x in vm.teams}))
        for x in vm.teams[:2]:
            x.persistent.options.append("boot 7")
    elif what == "vcpus-many":
        value = g.pick(["256", "289", "4096"])
        vm.settings = [s for s in vm.settings if not s.startswith("vcpus")] + [f"vcpus {value}"]
    elif what == "machine-version":
        vm.settings = [s for s in vm.settings if not s.startswith(("machine", "allow pc-machine", "allow E0401"))]
        value = "pc-q35-" + g.pick(BAD_VERSIONS)
        vm.settings.append(f"machine {value}")
    elif what == "rombar-off-twice":
        if len(vm.teams) < 2:
            vm.teams.append(g.team({x.name for x in vm.teams} | {x.vf_name for x in vm.teams}))
        for x in vm.teams[:2]:
            x.persistent.options = [o for o in x.persistent.options if not o.startswith("rom")] + ["rom bar off"]
    elif what == "missing-source":
        nic_form()
        team.drop = ("source ",)
    return target, value
