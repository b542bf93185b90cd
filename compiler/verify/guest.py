"""The verification guest: a Linux kernel and a tiny initramfs that loads the
failover drivers and reports what it sees.

Two ways to get one:

- built from Debian's packages (`apt-get download` of the versioned package
  behind `linux-image-amd64`, and `busybox-static`; nothing is installed) into
  a cache folder: `$TEAMC_CACHE` or `~/.cache/teamc`, under `guest/<kernel>/`;
- the user's own kernel and a folder holding its modules (`--kernel K
  --modules DIR`); the initramfs is packed around them, also in the cache.

An image is a folder with `vmlinuz`, `initrd.gz` and `image.json` (what went
into it). The initramfs is packed with busybox's own `cpio -o -H newc`, so the
host needs no cpio.

The guest's /init mounts the pseudo file systems, raises the console log level
so that net_failover's "failover master/standby slave/primary slave registered"
lines reach the kernel console (ttyS0), loads the modules in dependency order,
and then reports the state of every network interface on the second serial
port (ttyS1) four times a second. Each failover master it finds is brought up
with an address on slirp's 10.0.2.0/24 and pings the slirp gateway 10.0.2.2
through that master five times a second, so the slaves' packet counters show
which one carries the traffic; every reply is written to the third serial port
(ttyS2) with the guest's uptime and its sequence number, so that the host sees
what was lost and how long the stream stopped. The host side (serial.py,
judge.py) draws every conclusion.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Dependency order (each module's modinfo `depends=`). Modules a kernel has built
# in, or does not split out (older kernels have no virtio_pci_*_dev), are skipped.
MODULES = ("failover", "net_failover", "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci", "virtio_net", "e1000e")
REQUIRED = ("net_failover", "virtio_net", "e1000e")  # without these (as modules or built in) nothing can be proven
DEBIAN_KERNEL_META = "linux-image-amd64"
DEBIAN_BUSYBOX = "busybox-static"
# Bump when the initramfs layout or /init changes: each format is built into its own folder, so that
# checkouts of different teamc versions can share one cache.
IMAGE_FORMAT = 3

INIT = r"""#!/bin/busybox sh
# teamc verification guest. Kernel console: ttyS0. Reports: ttyS1 (read by teamc).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox mount -t devtmpfs dev /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox --install -s /bin
export PATH=/bin
OUT=/dev/ttyS1
say() { echo "TEAMC $*" > $OUT; }
# One line per ping reply through master $1 on ttyS2: "P master uptime seq".
pings() {
    ping -I "$1" -i 0.2 10.0.2.2 2>/dev/null | while read -r _ _ _ _ seq _; do
        read up _ < /proc/uptime
        case "$seq" in seq=*) echo "P $1 $up ${seq#seq=}" ;; esac
    done > /dev/ttyS2
}
read up _ < /proc/uptime
say boot $up $(uname -r)
echo 7 > /proc/sys/kernel/printk
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
ip link set lo up
for m in $(cat /etc/teamc-modules); do
    if [ -e /lib/modules/$m.ko ]; then
        if insmod /lib/modules/$m.ko; then say module $m; else say module-failed $m; fi
    fi
done
read up _ < /proc/uptime
say modules $up
n=0
up_masters=" "
tick=0
while :; do
    tick=$((tick + 1))
    read up _ < /proc/uptime
    report="T $tick $up"
    for p in /sys/class/net/*; do
        d=${p##*/}
        [ "$d" = lo ] && continue
        read mac < $p/address
        kind=other
        lowers=
        for l in $p/lower_*; do
            [ -e "$l" ] && lowers="$lowers${lowers:+,}${l##*/lower_}"
        done
        if [ -n "$lowers" ]; then
            kind=failover
            case "$up_masters" in
            *" $d "*) ;;
            *)
                n=$((n + 1))
                ip link set "$d" up
                ip addr add 10.0.2.$((14 + n))/24 dev "$d"
                pings "$d" &
                up_masters="$up_masters$d "
                say master $d $mac 10.0.2.$((14 + n))
                ;;
            esac
        elif [ -e $p/device/features ]; then
            kind=virtio
        elif [ -e $p/device/class ]; then
            kind=pci
        fi
        carrier=
        read carrier < $p/carrier 2>/dev/null
        [ -n "$carrier" ] || carrier=-
        read tx < $p/statistics/tx_packets
        read rx < $p/statistics/rx_packets
        report="$report
I $d $mac $kind $carrier $tx $rx ${lowers:--}"
    done
    echo "$report
E $tick" > $OUT
    sleep 0.25
done
"""


class GuestError(Exception):
    """The guest image cannot be built or found (the message says why and what to do)."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path  # what QEMU's -kernel gets: vmlinux (PVH entry) when the image has it, else vmlinuz
    initrd: Path
    description: str  # e.g. "Debian linux-image-6.1.0-56-amd64 6.1.192-2"

    @classmethod
    def load(cls, folder: Path) -> GuestImage:
        folder = Path(folder)
        kernel, initrd, meta = folder / "vmlinuz", folder / "initrd.gz", folder / "image.json"
        if (folder / "vmlinux").is_file():
            kernel = folder / "vmlinux"
        if not kernel.is_file() or not initrd.is_file():
            raise GuestError(f"{folder} is not a teamc guest image (it needs vmlinuz and initrd.gz); "
                             "build one with `teamc verify --build-guest-image`")
        try:
            description = json.loads(meta.read_text())["description"]
        except (OSError, ValueError, KeyError):
            description = str(folder)
        return cls(kernel, initrd, description)


def default_cache() -> Path:
    env = os.environ.get("TEAMC_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "teamc"


def _run(argv: list[str], cwd: Path | None = None, timeout: int = 600) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as err:
        raise GuestError(f"`{argv[0]}` is not available ({err.strerror}); building the guest image needs a "
                         "Debian-like host with apt, or use --kernel K --modules DIR") from err
    except subprocess.TimeoutExpired as err:
        raise GuestError(f"`{' '.join(argv)}` took longer than {timeout} s") from err
    if proc.returncode != 0:
        raise GuestError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def debian_kernel_package() -> str:
    """The versioned kernel package `linux-image-amd64` stands for, e.g. linux-image-6.1.0-56-amd64."""
    try:
        out = _run(["apt-cache", "depends", DEBIAN_KERNEL_META])
    except GuestError as err:
        raise GuestError(f"{err}\n(does `apt-get update` need to run first?)") from err
    for line in out.splitlines():
        m = re.match(r"\s*\|?Depends:\s*(linux-image-\S+)", line)
        if m and not m.group(1).startswith("<"):
            return m.group(1)
    raise GuestError(f"`apt-cache depends {DEBIAN_KERNEL_META}` names no linux-image package; "
                     "run `apt-get update` first")


def _download(packages: list[str], folder: Path) -> dict[str, Path]:
    """`apt-get download` into `folder`; returns package name -> .deb."""
    _run(["apt-get", "download", "-q", *packages], cwd=folder)
    debs = {}
    for package in packages:
        found = sorted(folder.glob(f"{package}_*.deb"))
        if not found:
            raise GuestError(f"`apt-get download {package}` produced no .deb")
        debs[package] = found[-1]
    return debs


def _deb_version(deb: Path) -> str:
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def _extract_from_deb(deb: Path, wanted, dest: Path) -> list[Path]:
    """Stream the .deb's data archive and keep only the members `wanted(name)` accepts
    (the kernel package unpacks to ~400 MB; the guest needs ~9 MB of it)."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None  # stdout=PIPE
    kept = []
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                src = archive.extractfile(member) if member.isfile() and wanted(name) else None
                if src is not None:  # (a regular file always has its data)
                    target = dest / Path(name).name
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    kept.append(target)
    finally:
        proc.stdout.close()
        if proc.wait() != 0:
            raise GuestError(f"`dpkg-deb --fsys-tarfile {deb.name}` failed")
    return kept


def _pack(root: Path, busybox: Path, output: Path) -> None:
    """The initramfs: `busybox cpio -o -H newc` of `root`, gzipped (deterministic: fixed mtimes, root-owned)."""
    names = []
    for path in sorted(root.rglob("*")):
        os.utime(path, (0, 0), follow_symlinks=False)
        names.append(str(path.relative_to(root)))
    os.utime(root, (0, 0))
    proc = subprocess.run([str(busybox), "cpio", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                          input="\n".join(names).encode() + b"\n", capture_output=True, timeout=120, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise GuestError(f"busybox cpio failed: {proc.stderr.decode(errors='replace').strip()}")
    with open(output, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(proc.stdout)


def _initramfs(busybox: Path, modules: dict[str, Path], output: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="teamc-initramfs-") as tmp:
        root = Path(tmp)
        for sub in ("bin", "etc", "lib/modules", "dev", "proc", "sys", "tmp", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(busybox, root / "bin" / "busybox")
        os.chmod(root / "bin" / "busybox", 0o755)
        (root / "bin" / "sh").symlink_to("busybox")
        for name, path in modules.items():
            shutil.copy(path, root / "lib" / "modules" / f"{name}.ko")
        (root / "etc" / "teamc-modules").write_text("\n".join(n for n in MODULES if n in modules) + "\n")
        init = root / "init"
        init.write_text(INIT)
        os.chmod(init, 0o755)
        _pack(root, root / "bin" / "busybox", output)


def _write_image(folder: Path, kernel: Path, busybox: Path, modules: dict[str, Path], description: str,
                 provenance: dict) -> GuestImage:
    """Assemble the image in a temporary sibling folder, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        shutil.copy(kernel, staging / "vmlinuz")
        pvh = pvh_vmlinux(kernel, staging / "vmlinux")
        _initramfs(busybox, modules, staging / "initrd.gz")
        shutil.copy(busybox, staging / "busybox")  # reused for --kernel/--modules images
        meta = {"format": IMAGE_FORMAT, "description": description, "modules": [n for n in MODULES if n in modules],
                "boot": "PVH entry of vmlinux" if pvh else "bzImage", **provenance}
        (staging / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.chmod(staging, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return GuestImage.load(folder)


def pvh_vmlinux(bzimage: Path, output: Path) -> bool:
    """Unpack the ELF kernel from a bzImage when it has a PVH entry point (the Xen ELF note
    PHYS32_ENTRY) and a compression the standard library reads (xz, lzma, gzip).

    QEMU then loads it directly (`-kernel vmlinux`): no real-mode setup and no in-guest
    decompression, which under TCG saves most of the boot (about 10 s -> 3.5 s to /init here).
    Returns False (and writes nothing) otherwise; the bzImage is used then."""
    import lzma
    import struct

    data = bzimage.read_bytes()
    if len(data) < 0x260 or data[0x202:0x206] != b"HdrS":
        return False
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    try:
        if payload.startswith(b"\xfd7zXZ\x00"):
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        elif payload.startswith(b"\x5d\x00\x00"):
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
        elif payload.startswith(b"\x1f\x8b"):
            elf = gzip.GzipFile(fileobj=io.BytesIO(payload)).read()
        else:
            return False
    except (lzma.LZMAError, OSError, EOFError):
        return False
    if not _has_pvh_note(elf):
        return False
    output.write_bytes(elf)
    return True


def _has_pvh_note(elf: bytes) -> bool:
    import struct

    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:  # 64-bit little-endian
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = p_offset, p_offset + p_filesz
        while at + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", elf, at)
            name = elf[at + 12:at + 12 + namesz]
            if name == b"Xen\x00" and kind == 18:  # XEN_ELFNOTE_PHYS32_ENTRY
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _current(folder: Path) -> bool:
    try:
        return json.loads((folder / "image.json").read_text()).get("format") == IMAGE_FORMAT
    except (OSError, ValueError):
        return False


def build_debian_image(cache: Path, rebuild: bool = False, log=lambda message: None) -> GuestImage:
    """The Debian guest image in `cache`/guest/<kernel package>, built if missing. Without apt (or
    its package lists), the newest image already in the cache is used."""
    try:
        package = debian_kernel_package()
    except GuestError:
        cached = sorted((f for f in (Path(cache) / "guest").glob("linux-image-*") if _current(f)),
                        key=lambda f: f.stat().st_mtime)
        if cached and not rebuild:
            log(f"apt cannot name Debian's current kernel here; using the cached {cached[-1].name}")
            return GuestImage.load(cached[-1])
        raise
    folder = Path(cache) / "guest" / f"{package}-{IMAGE_FORMAT}"
    if _current(folder) and not rebuild:
        return GuestImage.load(folder)
    log(f"building the guest image from Debian's {package} and {DEBIAN_BUSYBOX} into {folder}")
    with tempfile.TemporaryDirectory(prefix="teamc-guest-") as tmp:
        work = Path(tmp)
        debs = _download([package, DEBIAN_BUSYBOX], work)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        module_re = re.compile(rf"lib/modules/[^/]+/kernel/.*/({'|'.join(MODULES)})\.ko$")
        files = _extract_from_deb(debs[package], lambda n: n.startswith("boot/vmlinuz-") or module_re.search(n),
                                  unpacked)
        kernel = next((f for f in files if f.name.startswith("vmlinuz-")), None)
        if kernel is None:
            raise GuestError(f"{package} holds no /boot/vmlinuz-*")
        modules = {f.name.removesuffix(".ko"): f for f in files if f.name.endswith(".ko")}
        missing = [m for m in REQUIRED if m not in modules]
        if missing:
            raise GuestError(f"{package} has no module {', '.join(missing)}")
        bb = _extract_from_deb(debs[DEBIAN_BUSYBOX], lambda n: n == "bin/busybox", work)
        if not bb:
            raise GuestError(f"{DEBIAN_BUSYBOX} holds no /bin/busybox")
        os.chmod(bb[0], 0o755)
        version = _deb_version(debs[package])
        bb_version = _deb_version(debs[DEBIAN_BUSYBOX])
        return _write_image(folder, kernel, bb[0], modules, f"Debian {package} {version}",
                            {"kernel_package": f"{package} {version}",
                             "busybox_package": f"{DEBIAN_BUSYBOX} {bb_version}"})


def _decompressed(path: Path, dest: Path) -> Path:
    """A module as plain .ko: busybox insmod cannot rely on in-kernel decompression."""
    name = path.name
    out = dest / (name.split(".ko")[0] + ".ko")
    if name.endswith(".ko"):
        return path
    if name.endswith(".ko.xz"):
        import lzma

        out.write_bytes(lzma.decompress(path.read_bytes()))
    elif name.endswith(".ko.gz"):
        out.write_bytes(gzip.decompress(path.read_bytes()))
    elif name.endswith(".ko.zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise GuestError(f"{path} is zstd-compressed and there is no `zstd` to decompress it")
        _run([zstd, "-q", "-d", "-f", "-o", str(out), str(path)])
    else:
        raise GuestError(f"{path}: not a kernel module")
    return out


def _find_busybox(cache: Path) -> Path:
    """A static busybox for the initramfs: one kept by an earlier Debian build, one on PATH, or Debian's."""
    kept = sorted((Path(cache) / "guest").glob("*/busybox"))
    if kept:
        return kept[0]
    on_path = shutil.which("busybox")
    if on_path and _is_static(Path(on_path)):
        return Path(on_path)
    with tempfile.TemporaryDirectory(prefix="teamc-busybox-") as tmp:
        deb = _download([DEBIAN_BUSYBOX], Path(tmp))[DEBIAN_BUSYBOX]
        extracted = _extract_from_deb(deb, lambda n: n == "bin/busybox", Path(tmp))
        if not extracted:
            raise GuestError(f"{DEBIAN_BUSYBOX} holds no /bin/busybox")
        bb = extracted[0]
        keep = Path(cache) / "busybox"
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bb, keep)
        os.chmod(keep, 0o755)
        return keep


def _is_static(path: Path) -> bool:
    """An ELF without a PT_INTERP program header (no dynamic loader)."""
    try:
        data = path.read_bytes()[:65536]
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    import struct

    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 4 <= len(data) and struct.unpack_from("<I", data, at)[0] == 3:  # PT_INTERP
            return False
    return True


def image_from_kernel(kernel: Path, modules_dir: Path, cache: Path, log=lambda message: None) -> GuestImage:
    """An image around the user's kernel and the failover modules found (recursively) in `modules_dir`."""
    kernel, modules_dir = Path(kernel), Path(modules_dir)
    if not kernel.is_file():
        raise GuestError(f"--kernel {kernel}: no such file")
    if not modules_dir.is_dir():
        raise GuestError(f"--modules {modules_dir}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(modules_dir.rglob("*.ko*")):
        base = path.name.split(".ko")[0]
        if base in MODULES and base not in found:
            found[base] = path
    builtin = _builtin_modules(modules_dir)
    missing = [m for m in REQUIRED if m not in found and m not in builtin]
    if missing:
        raise GuestError(f"--modules {modules_dir}: no {', '.join(m + '.ko' for m in missing)} found "
                         "(and modules.builtin does not list them)")
    digest = hashlib.sha256()
    for path in [kernel, *found.values()]:
        digest.update(path.read_bytes())
    digest.update(INIT.encode())
    folder = Path(cache) / "guest" / f"custom-{digest.hexdigest()[:16]}"
    if _current(folder):
        return GuestImage.load(folder)
    log(f"packing a guest image around {kernel} into {folder}")
    busybox = _find_busybox(cache)
    with tempfile.TemporaryDirectory(prefix="teamc-modules-") as tmp:
        plain = {name: _decompressed(path, Path(tmp)) for name, path in found.items()}
        return _write_image(folder, kernel, busybox, plain, f"{kernel} with modules from {modules_dir}",
                            {"kernel": str(kernel), "modules_dir": str(modules_dir)})


def _builtin_modules(modules_dir: Path) -> set[str]:
    names = set()
    for listing in modules_dir.rglob("modules.builtin"):
        for line in listing.read_text(errors="replace").splitlines():
            names.add(Path(line.strip()).name.split(".ko")[0].replace("-", "_"))
    return names
