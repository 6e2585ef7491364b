from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from acoustid_stack.cli import main
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.fingerprint.audio import fpcalc


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(["fingerprint", *argv])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_prints_algorithm_length_and_hashes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["decode", "AQAAA0GCAA"], capsys)
    assert code == 0
    assert out.splitlines() == ["algorithm: 1", "length: 3", "hashes: 1,2,3"]


def test_decode_prints_json_with_signed_hashes_on_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = encode_fingerprint([2**32 - 1, 7])
    code, out, _ = run(["decode", "--json", "--signed", text], capsys)
    assert code == 0
    assert json.loads(out) == {"algorithm": 1, "length": 2, "hashes": [-1, 7]}


def test_a_bad_fingerprint_gives_one_clear_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["decode", "AQAAAQ"], capsys)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: FINGERPRINT is not a valid fingerprint (")


@pytest.mark.parametrize("hashes", ["[1, 2, 3]", "1,2,3", "1 2 3", "{1,2,3}", "FINGERPRINT=1,2,3"])
def test_encode_reads_the_usual_hash_list_forms(
    hashes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["encode", hashes], capsys) == (0, "AQAAA0GCAA\n", "")


def test_encode_reads_fpcalc_raw_json_from_stdin_and_reproduces_fpcalc(
    song: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = fpcalc(song, raw=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(raw)))
    code, out, _ = run(["encode"], capsys)
    assert code == 0
    assert out.strip() == fpcalc(song, raw=False)["fingerprint"]


@pytest.mark.parametrize(
    ("hashes", "message"),
    [("1,x", "not a list of integers"), ("4294967296", "cannot be encoded")],
)
def test_encode_rejects_what_is_not_32_bit_hashes(
    hashes: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["encode", hashes], capsys)
    assert code == 1
    assert message in err


def test_compare_prints_the_score_of_strings_json_and_hash_lists(
    song: Path, song_cut: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = fpcalc(song, raw=False)["fingerprint"]
    hashes = ",".join(map(str, fpcalc(song, raw=True)["fingerprint"]))
    assert run(["compare", text, hashes], capsys) == (0, "1.000000\n", "")
    code, out, _ = run(["compare", text, json.dumps(fpcalc(song_cut, raw=False))], capsys)
    assert code == 0
    assert float(out) > 0.9


def test_compare_names_the_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["compare", "AQAAA0GCAA", "garbage"], capsys)
    assert code == 1
    assert "FINGERPRINT2 is not a valid fingerprint" in err


def test_console_script_exits_non_zero_on_a_bad_fingerprint() -> None:
    done = subprocess.run(
        ["acoustid-stack", "fingerprint", "decode", "%%%"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: FINGERPRINT is not a valid fingerprint")
    assert "Traceback" not in done.stderr
