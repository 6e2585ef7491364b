"""Both project images as built from docker/Dockerfile and docker/Dockerfile.index: uid 1000,
the CLI, fpcalc, and a read-only root filesystem with only the documented tmpfs."""

from __future__ import annotations

import pytest

from .engine import BUILD_TIMEOUT, INDEX_IMAGE, PROJECT_IMAGES, SERVER_IMAGE, Engine
from .test_compose_stack import wait_for_health

# the first test of a session also waits for the engine and every image build (conftest.py)
pytestmark = [pytest.mark.containers, pytest.mark.timeout(BUILD_TIMEOUT)]

READ_ONLY = ("--read-only", "--tmpfs", "/tmp")  # docker/README.md, "Read-only root filesystem"


@pytest.mark.parametrize("image", sorted(PROJECT_IMAGES))
def test_runs_as_uid_1000_and_the_cli_answers(engine: Engine, image: str) -> None:
    result = engine.run(
        "run", "--rm", *READ_ONLY, image, "sh", "-c", "id -u; id -g; acoustid-stack --help"
    )
    uid, gid, *help_text = result.stdout.splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert help_text[0].startswith("Usage: acoustid-stack")


def test_server_image_fingerprints_audio_with_fpcalc(engine: Engine) -> None:
    """fpcalc decodes a WAV that the image's Python writes into the tmpfs."""
    script = (
        "python -c \"import wave,math;w=wave.open('/tmp/t.wav','wb');w.setnchannels(1);"
        "w.setsampwidth(2);w.setframerate(11025);w.writeframes(b''.join("
        "int(8000*math.sin(i/(3+i//20000))).to_bytes(2,'little',signed=True) "
        'for i in range(11025*12)));w.close()" && fpcalc -ignore-errors -json /tmp/t.wav'
    )
    result = engine.run("run", "--rm", *READ_ONLY, SERVER_IMAGE, "sh", "-c", script, check=False)
    # chromaprint 1.5 exits 3 after a harmless end-of-file error on WAV (fingerprint/audio.py)
    assert result.returncode in {0, 3}, result.stderr
    assert '"fingerprint": "AQ' in result.stdout, result.stdout


def test_index_image_turns_healthy_read_only(engine: Engine) -> None:
    name = "acoustid-read-only-index"
    engine.run("run", "--detach", "--name", name, *READ_ONLY, "--volume", "/data", INDEX_IMAGE)
    try:
        assert wait_for_health(engine, name, 60) == "healthy", engine.run("logs", name).stderr
    finally:
        engine.run("rm", "--force", "--volumes", name)
