"""The CLI as a new user meets it (issue 13's last paragraph): bad input gets one clear line
on stderr and a non-zero exit, never a traceback; a listing says which folder it read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from konak.devtools.demo import spoken_command
from konak.edge_models.settings import ENV_MODELS_DIR, default_models_dir
from tests.conftest import konak, one_error_line


@pytest.mark.parametrize(
    ("command", "content", "where"),
    [
        (
            ("hub", "check-config"),
            b'[hub]\ndatabase_path = "caf\xe9.sqlite3"\n',
            "0xe9 at offset 26",
        ),
        (("models", "list"), b'[models]\ndir = "/var/lib/konak/mod\xe8les"\n', "0xe8 at offset 34"),
    ],
)
def test_a_config_that_is_not_utf8_is_one_line_naming_the_file_and_the_byte(
    tmp_path: Path, command: tuple[str, str], content: bytes, where: str
) -> None:
    config = tmp_path / "konak.toml"
    config.write_bytes(content)

    line = one_error_line(konak(*command, "--config", str(config)))

    assert line == (
        f"konak {command[0]}: {config}: not UTF-8 text (byte {where}); "
        "TOML files must be UTF-8 [config_invalid]"
    )


def test_a_hub_secret_file_that_is_not_utf8_is_one_line_naming_the_file_and_the_byte(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_bytes(b"p\xe4ss\n")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_path = "{tmp_path}/hub.sqlite3"\n[mqtt]\npassword_file = "{secret}"\n'
    )

    line = one_error_line(konak("hub", "check-config", "--config", str(config)))

    assert line == (
        f"konak hub: {config}: mqtt.password_file: {secret}: not UTF-8 text (byte 0xe4 at "
        "offset 1); secret files must be UTF-8 [config_invalid]"
    )


def test_pulling_into_a_models_dir_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    # A regular file where a folder must be: refused even to root, unlike a chmod.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    models = blocker / "models"

    line = one_error_line(konak("models", "pull", "silero-vad-v6", "--models-dir", str(models)))

    assert line.startswith(f"konak models: cannot write to the models directory {models}: ")
    assert line.endswith("[store_unwritable]")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_pulling_into_a_read_only_models_dir_is_one_line(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o500)
    try:
        line = one_error_line(konak("models", "pull", "silero-vad-v6", "--models-dir", str(models)))
    finally:
        models.chmod(0o700)

    assert line == (
        f"konak models: cannot write to the models directory {models}: Permission denied "
        f"(choose another with --models-dir or {ENV_MODELS_DIR}, or run as a user who may "
        "write there) [store_unwritable]"
    )


def test_saying_into_a_folder_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "x.wav"

    line = one_error_line(konak("daemon", "say", "hi", "-o", str(out)))

    assert line == (f"konak daemon: cannot write {out}: no directory {out.parent} [config_invalid]")


def test_transcribing_an_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")

    line = one_error_line(konak("daemon", "transcribe", str(empty)))

    assert line == f"konak daemon: {empty}: cannot read WAV: the file is empty [audio_error]"


def test_transcribing_a_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "takes.wav"
    folder.mkdir()

    line = one_error_line(konak("daemon", "transcribe", str(folder)))

    assert line == (
        f"konak daemon: audio source file {folder} is a directory, not a file [audio_error]"
    )


def test_listing_models_says_which_folder_it_read(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_MODELS_DIR, "KONAK_CONFIG")}
    env["HOME"] = str(tmp_path)  # the default folder of a user with nothing installed
    folder = default_models_dir(os.geteuid(), tmp_path)

    done = konak("models", "list", env=env)

    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert str(folder) in first, done.stdout


def test_the_demo_says_the_wake_word_once_when_the_text_already_starts_with_it() -> None:
    assert [
        spoken_command(text)
        for text in (
            "Hey Jarvis, turn on the kitchen light",
            "hey jarvis turn on the kitchen light",
            "Jarvis... turn on the kitchen light",
            "turn on the kitchen light",
            "  turn on Jarvis mode ",
            "Hey Jarvis!",
        )
    ] == [
        "turn on the kitchen light",
        "turn on the kitchen light",
        "turn on the kitchen light",
        "turn on the kitchen light",
        "turn on Jarvis mode",
        "",
    ]
