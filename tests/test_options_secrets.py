"""An unknown option's error never repeats a value typed with it (issue 9).

``--password:secret``, ``--pasword=secret``, ``-psecret``, ``--passwordsecret``: the
line names the option as far as it is a name, and no more.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sstp_pppd import cli
from sstp_pppd.errors import ConfigError, ExitCode
from sstp_pppd.options import OPTIONS, parse_args, shown_option

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
KNOWN = [spec.name for spec in OPTIONS]
TYPOS = ["--pasword", "--passwd", "--pass", "--user-password", "--proxy-pass", "--secret", "--"]


def boilerplate(typed: list[str], before: bool) -> str:
    """The message for the same option with a neutral value: its fixed words."""
    argv = [*typed, "vpn.example"] if before else ["vpn.example", *typed]
    try:
        parse_args(argv)
    except ConfigError as exc:
        return str(exc)
    return ""


def message(argv: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_args(argv)
    return str(info.value)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("--password:hunter2", "'--password...' (what follows the name is not shown)"),
        ("--pasword:hunter2", "'--pasword...' (what follows the name is not shown)"),
        ("--password@hunter2", "'--password...' (what follows the name is not shown)"),
        ("--passwordhunter2", "'--password...' (what follows the name is not shown)"),
        ("--password-filehunter2", "'--password-file...' (what follows the name is not shown)"),
        ("--bogus", "'--bogus'"),
    ],
)
def test_the_name_is_shown_not_the_value(typed: str, shown: str) -> None:
    if typed.startswith("--password-file") and "--password-file" not in KNOWN:
        pytest.skip("no --password-file option")
    assert shown_option(typed) == shown
    assert f"unknown option {shown}" in message([typed, "vpn.example"])


def test_pasword_equals_secret_names_only_the_option() -> None:
    text = message(["--pasword=hunter2", "vpn.example"])
    assert "hunter2" not in text and "'--pasword'" in text


def test_a_short_option_shows_its_letter_only() -> None:
    text = message(["-phunter2", "vpn.example"])
    assert "hunter2" not in text and "'-p'" in text


def test_the_error_line_of_the_program_has_no_secret() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sstp_pppd.cli", "--password:hunter2", "vpn.example"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == ExitCode.USAGE
    assert "hunter2" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


secrets = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=4,
    max_size=40,
)
separators = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0").filter(
        lambda c: c not in NAME_CHARS
    ),
    min_size=1,
    max_size=3,
)


@example(name="--ca-cert", separator=":", secret="--he", before=True)
@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(KNOWN + TYPOS),
    separator=separators,
    secret=secrets,
    before=st.booleans(),
)
def test_no_error_repeats_a_secret_appended_to_an_option(
    name: str, separator: str, secret: str, before: bool
) -> None:
    typed = name + separator + secret
    argv = [typed, "vpn.example"] if before else ["vpn.example", typed]
    try:
        parse_args(argv)
    except ConfigError as exc:
        text = str(exc)
    else:
        return  # "--password=..." and the like are valid: no message at all
    if secret in name:
        return  # the name itself contains it: nothing to tell apart
    if secret in boilerplate([name + separator + "\x01" * len(secret)], before):
        return  # one of the message's own words ("--he" of "see --help"): no leak
    assert secret not in text, (typed, text)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(KNOWN),
    secret=st.text(alphabet=sorted(NAME_CHARS - {"-"}), min_size=4, max_size=30),
)
def test_no_error_repeats_a_secret_glued_to_a_known_option(name: str, secret: str) -> None:
    typed = name + secret
    try:
        parse_args([typed, "vpn.example"])
    except ConfigError as exc:
        text = str(exc)
    else:
        return  # it spelled a longer option (--log + "file")
    if secret in name:
        return
    assert secret not in text, (typed, text)


@example(secret="opti")
@settings(max_examples=300, deadline=None)
@given(secret=st.text(alphabet=sorted(NAME_CHARS - {"-", "v"}), min_size=4, max_size=30))
def test_no_error_repeats_a_short_options_word(secret: str) -> None:
    text = message(["-" + secret, "vpn.example"])
    # The message's own words ("opti" is in "option") are no leak: the same message for
    # a word of the same first letter and nothing else in common shows them.
    assume(secret not in message(["-" + secret[0] + "0" * (len(secret) - 1), "vpn.example"]))
    assert secret not in text, text


def test_cli_main_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--password:hunter2", "vpn.example"]) == ExitCode.USAGE
    assert "hunter2" not in capsys.readouterr().err
