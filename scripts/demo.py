"""The README's first command: a real tunnel against a local sstp-server in User-Mode Linux.

Boots the guest of the end-to-end tests (tests/e2e), starts sstp-server 0.7.2 (which
verifies the crypto binding), runs sstp-pppd in launch mode with real pppd, shows its stages
as they happen, pings through the tunnel both ways, transfers 4 MiB with a checksum, and
disconnects cleanly. Exits non-zero if any step fails.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.bed import PASSWORD, SSTP_PPPD, USERNAME, Lab
from tests.e2e.certs import SERVER_NAME
from tests.e2e.uml import GuestError, GuestProcess

T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


def follow(proc: GuestProcess, seen: int) -> int:
    """Print the client's new stderr lines; return how many were shown."""
    path = proc.stderr_path
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines[seen:]:
        say(f"  | {line}")
    return len(lines)


def main() -> int:
    say("booting User-Mode Linux (server and client network namespaces, real pppd)...")
    with Lab() as lab:
        say(f"guest up; logs in {lab.run_dir}")
        case = lab.new_case("demo")
        lab.server.start(case)
        say(
            f"sstp-server 0.7.2 listening on {SERVER_NAME} (192.0.2.1:443), verifying the "
            "crypto binding"
        )
        pw = case / "password"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        argv = [
            str(SSTP_PPPD),
            "--ca-cert",
            str(lab.certs.ca.cert),
            "--user",
            USERNAME,
            "--password-file",
            str(pw),
            SERVER_NAME,
            "--",
            "noauth",
            "refuse-eap",
            "refuse-pap",
            "refuse-chap",
            "refuse-mschap",
            "nodefaultroute",
            "noccp",
        ]
        say("$ " + " ".join(a.replace(str(lab.run_dir), "$RUN") for a in argv))
        client = lab.guest.spawn(argv, ns="cli", log_dir=case, name="sstp-pppd")
        seen = 0
        deadline = time.monotonic() + 90
        link = None
        while time.monotonic() < deadline and client.poll() is None:
            seen = follow(client, seen)
            try:
                link = lab.wait_for_ppp(timeout=1, proc=client)
                break
            except GuestError:
                continue
        seen = follow(client, seen)
        if link is None:
            say("FAILED: the tunnel did not come up")
            client.stop(10)
            follow(client, seen)
            return 1
        say(f"ppp0 up: local {link.local}, peer {link.peer}")
        lab.server.wait_for_log("Crypto Binding is valid.", 15)
        say("server: Crypto Binding is valid.")
        ok = True
        for ns, dst in (("cli", link.peer), ("srv", link.local)):
            r = lab.ping(dst, ns=ns, log_dir=case)
            summary = [line for line in r.stdout.splitlines() if "packets" in line or "rtt" in line]
            say(f"ping {dst} from {ns}: " + ("; ".join(summary) or f"exit {r.returncode}"))
            ok &= r.returncode == 0
        xfer = lab.transfer(4 << 20, log_dir=case)
        say(
            f"transfer 4 MiB client -> server through the tunnel: {xfer.seconds:.1f} s, "
            f"{xfer.mbit_s:.1f} Mbit/s, checksum {'matches' if xfer.ok else 'DIFFERS'}"
        )
        ok &= xfer.ok
        say("disconnecting (SIGTERM)...")
        res = client.stop(20)
        seen = follow(client, seen)
        gone = lab.wait_for_no_ppp()
        lab.server.wait_for_log("Received call disconnect request.", 10)
        say("server: Received call disconnect request.")
        say(f"sstp-pppd exited {res.returncode}; ppp0 {'gone' if gone else 'STILL THERE'}")
        ok &= res.returncode == 0 and gone
        lab.server.stop()
    say("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
