"""Bad and big input at scale: a clear diagnostic or a compile, bounded memory, no traceback."""

import os
import resource
import subprocess
import sys
import tempfile

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow

MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space for one teamc process


def run_teamc(*args, cwd=None):
    """Run teamc under a 1 GiB address-space limit; returns (code, stderr, peak RSS in MiB)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    # stderr goes to a file, not a pipe: wait4 (for the child's own peak RSS) must not
    # wait on a child that is blocked writing into a full pipe.
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "teamc", *args], cwd=cwd or ROOT,
                                stdout=subprocess.DEVNULL, stderr=err_file, preexec_fn=limit,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        stderr = err_file.read().decode("utf-8", errors="replace")
    code = proc.returncode
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr[-2000:]
    return code, stderr, usage.ru_maxrss / 1024


def fleet(vms: int, start: int = 0) -> str:
    out = []
    for i in range(start, start + vms):
        hi, lo = (i >> 8) & 0xFF, i & 0xFF
        out.append(f"vm vm{i:06d} {{\n    memory 1 GiB\n"
                   f"    team a {{ mac 52:54:{hi:02x}:{lo:02x}:00:01; persistent virtio bridge br0; "
                   f"transient hostdev 0000:{hi:02x}:{lo >> 3:02x}.{lo & 7:x} }}\n"
                   f"    team b {{ mac 52:54:{hi:02x}:{lo:02x}:00:02; persistent virtio user; "
                   f"transient hostdev 0001:{hi:02x}:{lo >> 3:02x}.{lo & 7:x} }}\n}}\n")
    return "".join(out)


def test_fifty_megabytes_of_garbage_is_one_diagnostic(tmp_path):
    path = tmp_path / "garbage.team"
    path.write_bytes(os.urandom(50 * 1024 * 1024))
    code, err, peak = run_teamc("check", str(path))
    assert code == 1 and "error[E0003]" in err
    assert peak < 700


def test_fifty_megabytes_of_comments_around_a_program_compile(tmp_path):
    path = tmp_path / "big.team"
    filler = "# " + "x" * 77 + "\n"
    path.write_text(filler * 330_000 + fleet(2) + filler * 330_000)
    assert path.stat().st_size > 50 * 1024 * 1024
    code, err, peak = run_teamc("compile", str(path), "-o", str(tmp_path / "out"))
    assert (code, err) == (0, "")
    assert len(os.listdir(tmp_path / "out")) == 5
    assert peak < 900


def test_fifty_megabytes_with_an_early_mistake_is_one_quick_diagnostic(tmp_path):
    path = tmp_path / "big.team"
    path.write_text("vm a { team t {\n    mac\n" + "    mac 52:54:00:00:00:01\n" * 2_100_000 + "} }\n")
    assert path.stat().st_size > 50 * 1024 * 1024
    code, err, peak = run_teamc("check", str(path))
    assert code == 1 and err.startswith("error[E0001]: unexpected end of line; expected a value\n")
    assert f"{path}:2:8" in err
    assert peak < 900


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "huge.team"
    with open(path, "wb") as fh:
        fh.write(b"# " + b"x" * (65 * 1024 * 1024) + b"\n")
    code, err, _ = run_teamc("check", str(path))
    assert code == 1 and "error[E0003]" in err and "larger than 64 MiB" in err


def test_one_hundred_thousand_lines_compile(tmp_path):
    path = tmp_path / "fleet.team"
    path.write_text(fleet(20_000 // 2))
    assert path.read_text().count("\n") >= 50_000
    code, err, peak = run_teamc("check", str(path))
    assert (code, err) == (0, "")
    assert peak < 700


def test_ten_thousand_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10_000):
        (src / f"vm{i:05d}.team").write_text(fleet(1, start=i))
    (src / "vm00042.team").write_text("vm broken { team t { persistent virtio user } }\n")
    code, err, _ = run_teamc("compile", str(src), "-o", str(tmp_path / "out"), "-j", "2")
    assert code == 1 and err.count("error[E0104]") == 1
    assert len(os.listdir(tmp_path / "out")) == 2 * 9_999 + 1  # and the manifest


PATHOLOGICAL = {  # explicit ids: pytest puts the id into an environment variable of every child
    "unterminated-vms": "vm a {" * 100_000,
    "deep-braces": "vm a { team t { persistent virtio user {" + "{" * 100_000,
    "closing-braces": "}" * 100_000,
    "quotes": '"' * 100_000,
    "unterminated-teams": "vm a {\n" + "team t {\n" * 50_000,
    "control-bytes": "\x00\x01\x02" * 100_000,
    "twenty-thousand-duplicate-vms": "vm a { team t { persistent virtio user; transient hostdev 0000:03:07.1 } }\n"
    * 20_000,
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_text(tmp_path, text):
    path = tmp_path / "p.team"
    path.write_text(text)
    code, err, peak = run_teamc("check", str(path))
    assert code == 1 and ("error[E0" in err)
    assert peak < 700


def test_invalid_utf8_points_at_the_first_bad_byte(tmp_path):
    path = tmp_path / "latin1.team"
    path.write_bytes("vm caf\u00e9 {}\n".encode("latin-1"))
    code, err, _ = run_teamc("check", str(path))
    assert code == 1 and f"{path}:1:7" in err and "byte 0xe9 at offset 6" in err
