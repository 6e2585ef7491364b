import pytest

from acoustid_stack.ops.wal import Lsn


def test_lsn_parses_and_prints_both_halves() -> None:
    lsn = Lsn.parse("16/B374D848")
    assert lsn.position == (0x16 << 32) | 0xB374D848
    assert str(lsn) == "16/B374D848"


def test_difference_between_positions_is_bytes_across_the_32_bit_boundary() -> None:
    assert Lsn.parse("1/0") - Lsn.parse("0/FFFFFFF0") == 16
    assert Lsn.parse("0/10") < Lsn.parse("1/0")


def test_segment_name_follows_timeline_and_16_mib_segments() -> None:
    assert Lsn.parse("0/3000028").segment_name() == "000000010000000000000003"
    assert Lsn.parse("1/2000000").segment_name(timeline=2) == "000000020000000100000002"


@pytest.mark.parametrize("text", ["", "16", "16/", "XY/12", "123456789/0"])
def test_text_that_is_not_an_lsn_is_refused_with_its_value(text: str) -> None:
    with pytest.raises(ValueError, match="not a WAL position"):
        Lsn.parse(text)
