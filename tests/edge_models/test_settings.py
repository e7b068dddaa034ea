from __future__ import annotations

from pathlib import Path

from konak.edge_models.settings import ModelSettings, default_models_dir


def test_models_dir_precedence_is_flag_then_env_then_config_then_default() -> None:
    env = {"KONAK_MODELS_DIR": "/env"}
    config = {"dir": "/cfg"}
    resolve = ModelSettings.resolve
    assert resolve(
        models_dir="/flag", accept_licenses=[], environ=env, config=config
    ).models_dir == Path("/flag")
    assert resolve(
        models_dir=None, accept_licenses=[], environ=env, config=config
    ).models_dir == Path("/env")
    assert resolve(
        models_dir=None, accept_licenses=[], environ={}, config=config
    ).models_dir == Path("/cfg")


def test_the_default_models_dir_is_system_wide_for_root_and_per_user_otherwise() -> None:
    assert default_models_dir(0, Path("/root")) == Path("/var/lib/konak/models")
    assert default_models_dir(1000, Path("/home/u")) == Path("/home/u/.local/share/konak/models")


def test_accepted_licenses_merge_flags_env_and_config() -> None:
    settings = ModelSettings.resolve(
        models_dir="/m",
        accept_licenses=["A-1.0,B-2.0"],
        environ={"KONAK_ACCEPT_LICENSES": "C-3.0 D-4.0"},
        config={"accept_licenses": ["E"]},
    )
    assert settings.accepted_licenses == {"A-1.0", "B-2.0", "C-3.0", "D-4.0", "E"}
