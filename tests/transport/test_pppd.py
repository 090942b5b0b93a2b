"""pppd_argv: the command line pppd is started with in launch mode."""

from __future__ import annotations

from sstp_pppd.transport.pppd import describe_exit, pppd_argv


def test_minimal_argv() -> None:
    argv = pppd_argv("/usr/sbin/pppd", "/dev/pts/7", user=None, password_fd=None, ipparam=None,
                     options=())  # fmt: skip
    assert argv == ["/usr/sbin/pppd", "/dev/pts/7", "nodetach"]


def test_password_goes_by_descriptor_and_user_options_come_last() -> None:
    argv = pppd_argv(
        "pppd",
        "/dev/pts/3",
        user="alice",
        password_fd=5,
        ipparam="office",
        options=("noauth", "user", "bob", "mtu", "1400"),
    )
    assert argv == [
        "pppd", "/dev/pts/3", "nodetach",
        "user", "alice",
        "plugin", "passwordfd.so", "passwordfd", "5",
        "ipparam", "office",
        # pppd takes the last of repeated options: the user's own "user bob" wins.
        "noauth", "user", "bob", "mtu", "1400",
    ]  # fmt: skip


def test_no_secret_on_the_command_line() -> None:
    # The password itself never appears: only the number of the descriptor it is read from.
    argv = pppd_argv("pppd", "/dev/pts/1", user="u", password_fd=0, ipparam=None, options=())
    assert argv[argv.index("passwordfd") + 1] == "0"
    assert argv.count("passwordfd") == 1


def test_describe_exit() -> None:
    assert describe_exit(-15) == "pppd was killed by signal 15"
    assert describe_exit(2) == "pppd rejected its options"
    assert describe_exit(250) == "pppd exited with status 250"
