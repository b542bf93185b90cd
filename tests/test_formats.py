"""Machine-readable diagnostics, each held to its schema or read by a real consumer: SARIF 2.1.0
(the published schema), JUnit XML (junitparser, as CI servers read it), GitLab Code Quality (the
fields GitLab's documentation requires), Checkstyle XML (its report format as an XSD); and where
they go: standard output for `check`, standard error when stdout carries outputs, --output-file."""

import json

import jsonschema
import junitparser
import pytest
from lxml import etree

from helpers import ROOT, TESTS, teamc, teamc_process
from teamc.diagnostics import CODES, MACHINE_FORMATS, diag, render
from teamc.source import SourceFile, Span

SEED = "examples/seed.team"
BROKEN = "tests/cases/mac-mismatch.team"
CYCLE = "tests/cases/teaming-cycle.team"
ALONE = "tests/cases/persistent-alone.team"  # a warning only
SARIF_SCHEMA = json.loads((TESTS / "data" / "sarif-schema-2.1.0.json").read_text())
GITLAB_SCHEMA = json.loads((TESTS / "data" / "gitlab-code-quality.schema.json").read_text())
CHECKSTYLE_XSD = etree.XMLSchema(etree.parse(str(TESTS / "data" / "checkstyle.xsd")))
NO_PLACE = diag("E0003", "the file is larger than 64 MiB", None, help="split the fleet into several .team files")


def check(*args: str) -> tuple[int, str]:
    code, out, err = teamc("check", *args)
    assert err == "", "a machine-readable format leaves standard error to humans"
    return code, out


# --- where they go --------------------------------------------------------------------------


def test_check_sarif_of_a_folder_on_stdout_is_a_valid_log():
    # What a pipeline runs: `teamc check --format sarif . > out.sarif`.
    proc = teamc_process("check", "--format", "sarif", ".")
    assert proc.returncode == 1 and proc.stderr == b""
    log = json.loads(proc.stdout)
    jsonschema.validate(log, SARIF_SCHEMA)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} >= {"E0308", "E0305", "W0501"}


@pytest.mark.parametrize("fmt", MACHINE_FORMATS)
def test_every_machine_format_goes_to_stdout_for_check(fmt):
    code, out, err = teamc("check", BROKEN, "--format", fmt)
    assert code == 1 and err == "" and "E0308" in out


@pytest.mark.parametrize("fmt", ["human", "concise", "github"])
def test_text_for_people_stays_on_stderr(fmt):
    code, out, err = teamc("check", BROKEN, "--format", fmt)
    assert code == 1 and out == "" and "E0308" in err


def test_compile_keeps_stdout_for_its_outputs():
    code, out, err = teamc("compile", ALONE, "--emit", "xml", "--format", "sarif")
    assert code == 0 and out.startswith("<domain")
    jsonschema.validate(json.loads(err), SARIF_SCHEMA)


@pytest.mark.parametrize("command", [["check"], ["compile", "--emit", "xml"], ["fmt", "--check"]])
def test_output_file_takes_the_diagnostics_of_any_command(tmp_path, command):
    report = tmp_path / "reports" / "teamc.xml"
    code, _, err = teamc(*command, "tests/cases/syntax-error.team", "--format", "junit", "--output-file", str(report))
    assert code == 1 and err == ""
    suites = junitparser.JUnitXml.fromfile(str(report))
    (case,) = [case for suite in suites for case in suite]
    assert case.name == "tests/cases/syntax-error.team" and not case.is_passed


def test_output_file_for_import(tmp_path):
    report = tmp_path / "codequality.json"
    code, _, err = teamc("import", "tests/cases/left-out.xml", "-o", str(tmp_path / "teams"), "--format", "gitlab",
                         "--output-file", str(report))
    assert code == 0 and err == ""
    issues = json.loads(report.read_text())
    jsonschema.validate(issues, GITLAB_SCHEMA)
    assert {i["check_name"] for i in issues} == {"W0506 left-out"}


def test_output_file_that_cannot_be_written_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = teamc("check", BROKEN, "--format", "json", "--output-file", str(tmp_path / "file" / "report.json"))
    assert code == 2 and f"cannot write {tmp_path / 'file' / 'report.json'}" in err


def test_a_clean_run_still_writes_a_report():
    code, out = check(SEED, "--format", "junit")
    assert code == 0 and junitparser.JUnitXml.fromstring(out.encode()).tests == 1
    code, out = check(SEED, "--format", "gitlab")
    assert (code, json.loads(out)) == (0, [])


# --- SARIF and JSON ---------------------------------------------------------------------


def test_sarif_validates_against_the_published_schema():
    code, out = check(BROKEN, CYCLE, ALONE, "--format", "sarif")
    assert code == 1
    log = json.loads(out)
    jsonschema.validate(log, SARIF_SCHEMA)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"E0308", "E0305", "W0501"}
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_sarif_with_no_findings_is_valid_too():
    code, out = check(SEED, "--format", "sarif")
    assert code == 0
    jsonschema.validate(json.loads(out), SARIF_SCHEMA)


def test_json_format_is_versioned_and_complete():
    _, out = check(BROKEN, "--format", "json")
    (d,) = json.loads(out)["diagnostics"]
    assert json.loads(out)["version"] == 1
    assert d["code"] == "E0308" and d["slug"] == "mac-mismatch" and d["severity"] == "error"
    assert d["location"] == {"file": BROKEN, "line": 3, "column": 48, "end_line": 3, "end_column": 65}
    assert d["labels"][0]["message"] == "partner's MAC" and d["help"]


# --- JUnit -------------------------------------------------------------------------------


def test_junit_is_read_by_a_junit_consumer():
    code, out = check(BROKEN, SEED, ALONE, CYCLE, "--format", "junit")
    assert code == 1
    xml = junitparser.JUnitXml.fromstring(out.encode())
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 0)
    cases = {case.name: case for case in suite}
    assert list(cases) == [BROKEN, SEED, ALONE, CYCLE]  # the inputs in the order given
    assert cases[SEED].is_passed and cases[ALONE].is_passed
    (failure,) = cases[BROKEN].result
    assert isinstance(failure, junitparser.Failure) and failure.type == "E0308 mac-mismatch"
    assert failure.message.startswith(f"{BROKEN}:3:48: transient nic `vf0` has MAC")
    assert "^^^^^^^^^^^^^^^^^" in failure.text and "= help:" in failure.text
    assert "warning[W0501]" in cases[ALONE].system_out


# --- GitLab Code Quality ---------------------------------------------------------------------


def test_gitlab_code_quality_has_the_fields_gitlab_needs():
    code, out = check(BROKEN, CYCLE, ALONE, "tests/cases/bad-mac.team", "--format", "gitlab")
    assert code == 1
    issues = json.loads(out)
    jsonschema.validate(issues, GITLAB_SCHEMA)
    assert len({i["fingerprint"] for i in issues}) == len(issues)  # GitLab shows one issue per fingerprint
    mac = next(i for i in issues if i["check_name"] == "E0308 mac-mismatch")
    assert mac["severity"] == "major" and mac["location"] == {"path": BROKEN, "lines": {"begin": 3, "end": 3}}
    assert next(i for i in issues if i["check_name"] == "W0501 persistent-alone")["severity"] == "minor"


def test_gitlab_fingerprint_survives_moving_the_problem_down_the_file():
    text = (ROOT / BROKEN).read_text()
    first = json.loads(teamc("check", "-", "--format", "gitlab", stdin=text)[1])
    moved = json.loads(teamc("check", "-", "--format", "gitlab", stdin="\n\n# moved\n" + text)[1])
    assert first[0]["location"]["lines"] != moved[0]["location"]["lines"]
    assert first[0]["fingerprint"] == moved[0]["fingerprint"]


def test_gitlab_same_message_twice_in_a_file_gets_two_fingerprints():
    source = SourceFile("a.team", "vm x {}\nvm x {}\n")
    twice = [diag("E0205", "bad value", Span(source, 0, 2), help="fix"),
             diag("E0205", "bad value", Span(source, 8, 10), help="fix")]
    issues = json.loads(render(twice, "gitlab"))
    assert len({i["fingerprint"] for i in issues}) == 2


# --- Checkstyle ----------------------------------------------------------------------------


def test_checkstyle_validates_against_the_report_format():
    code, out = check(BROKEN, SEED, ALONE, "--format", "checkstyle")
    assert code == 1
    root = etree.fromstring(out.encode())
    CHECKSTYLE_XSD.assertValid(root)
    assert [f.get("name") for f in root] == [BROKEN, SEED, ALONE]
    (error,) = root[0]
    assert (error.get("line"), error.get("column"), error.get("severity"), error.get("source")) == (
        "3", "48", "error", "teamc.E0308.mac-mismatch")
    assert root[2][0].get("severity") == "warning"


# --- a diagnostic with no place in a file ------------------------------------------------------


def test_every_format_keeps_a_diagnostic_without_a_place():
    jsonschema.validate(json.loads(render([NO_PLACE], "sarif")), SARIF_SCHEMA)
    jsonschema.validate(json.loads(render([NO_PLACE], "gitlab")), GITLAB_SCHEMA)
    CHECKSTYLE_XSD.assertValid(etree.fromstring(render([NO_PLACE], "checkstyle", inputs=["big.team"]).encode()))
    (suite,) = list(junitparser.JUnitXml.fromstring(render([NO_PLACE], "junit", inputs=["big.team"]).encode()))
    assert (suite.tests, suite.failures) == (2, 1)
    assert "larger than 64 MiB" in render([NO_PLACE], "concise") + render([NO_PLACE], "human")
