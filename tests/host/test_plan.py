"""The route and DNS decisions of sstp_pppd.host.plan (pure: no host is touched)."""

from __future__ import annotations

import pytest

from sstp_pppd.host.connconf import Connection
from sstp_pppd.host.plan import (
    KILL_METRIC,
    DnsOp,
    LinkInfo,
    Purpose,
    RouteAnswer,
    RouteOp,
    RouteType,
    Scope,
    dns_servers,
    needs_server_route,
    plan_link_up,
    plan_server_routes,
)

V4 = LinkInfo(ifname="ppp0", family=4, local="10.66.0.2", peer="10.66.0.1", dns=("10.66.0.1",))
V6 = LinkInfo(ifname="ppp0", family=6, local="fe80::2", peer="fe80::1")
VIA_ETH = RouteAnswer(address="192.0.2.1", ifname="eth0", gateway="192.0.2.254")


def routes(ops: object) -> list[tuple[str, str, str]]:
    return [
        (op.dst, op.purpose.value, op.type.value)
        for op in ops  # type: ignore[attr-defined]
        if isinstance(op, RouteOp)
    ]


def test_no_settings_no_server_route() -> None:
    assert not needs_server_route(Connection(name="c"), ["192.0.2.1"])
    assert plan_server_routes(Connection(name="c"), [VIA_ETH]).ops == ()


@pytest.mark.parametrize(
    "conn",
    [
        Connection(name="c", save_server_route=True),
        Connection(name="c", default_route=True),
        Connection(name="c", default_route=True, kill_switch=True),
        Connection(name="c", routes=("192.0.2.0/24",)),  # would capture the server
    ],
)
def test_server_route_pinned_via_the_kernels_gateway(conn: Connection) -> None:
    plan = plan_server_routes(conn, [VIA_ETH])
    assert plan.ops == (
        RouteOp(
            dst="192.0.2.1/32",
            purpose=Purpose.SERVER,
            scope=Scope.CONNECTION if conn.kill_switch else Scope.SESSION,
            ifname="eth0",
            gateway="192.0.2.254",
        ),
    )


def test_split_route_not_covering_the_server_needs_no_pin() -> None:
    assert not needs_server_route(Connection(name="c", routes=("10.0.0.0/8",)), ["192.0.2.1"])
    # An IPv6 route never covers an IPv4 server.
    assert not needs_server_route(Connection(name="c", routes=("::/1",)), ["192.0.2.1"])


def test_server_route_ipv6_is_a_128_and_on_link_has_no_gateway() -> None:
    answer = RouteAnswer(address="2001:db8::1", ifname="veth0", gateway=None)
    (op,) = plan_server_routes(Connection(name="c", save_server_route=True), [answer]).ops
    assert isinstance(op, RouteOp)
    assert (op.dst, op.gateway, op.ifname) == ("2001:db8::1/128", None, "veth0")


def test_existing_unreachable_and_ppp_answers_are_not_pinned() -> None:
    conn = Connection(name="c", default_route=True)
    answers = [
        RouteAnswer(address="192.0.2.1", ifname="eth0", gateway=None, host_route_exists=True),
        RouteAnswer(address="192.0.2.2", ifname=None, gateway=None, unreachable=True),
        RouteAnswer(address="192.0.2.3", ifname="ppp1", gateway=None),
    ]
    plan = plan_server_routes(conn, answers)
    assert plan.ops == ()
    assert len(plan.warnings) == 2  # the existing route is silently left alone


def test_split_routes_per_family_and_the_peer_skipped() -> None:
    conn = Connection(name="c", routes=("10.99.0.0/24", "10.66.0.1/32", "2001:db8:99::/48"))
    assert routes(plan_link_up(conn, V4).ops) == [("10.99.0.0/24", "split", "unicast")]
    assert routes(plan_link_up(conn, V6).ops) == [("2001:db8:99::/48", "split", "unicast")]
    assert all(op.scope is Scope.LINK for op in plan_link_up(conn, V4).ops)


def test_full_tunnel_is_two_halves_per_family_through_the_link() -> None:
    conn = Connection(name="c", default_route=True)
    ops4 = plan_link_up(conn, V4).ops
    assert routes(ops4) == [
        ("0.0.0.0/1", "default", "unicast"),
        ("128.0.0.0/1", "default", "unicast"),
    ]
    assert {op.ifname for op in ops4 if isinstance(op, RouteOp)} == {"ppp0"}
    assert routes(plan_link_up(conn, V6).ops) == [
        ("::/1", "default", "unicast"),
        ("8000::/1", "default", "unicast"),
    ]


def test_a_zero_prefix_split_route_means_the_full_tunnel() -> None:
    conn = Connection(name="c", routes=("0.0.0.0/0",))
    assert [r[0] for r in routes(plan_link_up(conn, V4).ops)] == ["0.0.0.0/1", "128.0.0.0/1"]


def test_kill_switch_unreachable_halves_both_families_until_down() -> None:
    conn = Connection(name="c", default_route=True, kill_switch=True)
    ops = [op for op in plan_link_up(conn, V4).ops if isinstance(op, RouteOp)]
    kill = [op for op in ops if op.purpose is Purpose.KILL_SWITCH]
    assert [op.dst for op in kill] == ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
    assert all(op.type is RouteType.UNREACHABLE and op.ifname is None for op in kill)
    assert all(op.metric == KILL_METRIC and op.scope is Scope.CONNECTION for op in kill)
    # The tunnel's halves have the lower metric: they win while the link is up.
    assert all(op.metric < KILL_METRIC for op in ops if op.purpose is Purpose.DEFAULT)
    # Added once (at ip-up), not again at ipv6-up.
    assert not [op for op in plan_link_up(conn, V6).ops if op.purpose is Purpose.KILL_SWITCH]  # type: ignore[union-attr]


def test_kill_switch_needs_the_full_tunnel() -> None:
    with pytest.raises(Exception, match="--kill-switch needs --default-route"):
        Connection(name="c", kill_switch=True)


def test_dns_servers_and_domains() -> None:
    conn = Connection(name="c", dns=True, dns_domains=("corp.example", "~internal.example"))
    (dns,) = [op for op in plan_link_up(conn, V4).ops if isinstance(op, DnsOp)]
    assert dns == DnsOp(
        ifname="ppp0",
        servers=("10.66.0.1",),
        search=("corp.example",),
        routing=("internal.example",),
    )
    assert not [op for op in plan_link_up(conn, V6).ops if isinstance(op, DnsOp)]


def test_no_dns_without_servers_or_domains() -> None:
    conn = Connection(name="c", dns=True)
    plan = plan_link_up(conn, V4, use_peer_dns=False)
    assert plan.ops == ()
    assert "usepeerdns" in plan.warnings[0]


def test_dns_servers_from_pppd_environment() -> None:
    assert dns_servers({"DNS1": "10.0.0.53", "DNS2": "10.0.0.53"}) == ("10.0.0.53",)
    assert dns_servers({"DNS1": "0.0.0.0", "DNS2": "junk; rm -rf /"}) == ()
    assert dns_servers({"DNS2": "10.0.0.2", "DNS1": "10.0.0.1"}) == ("10.0.0.1", "10.0.0.2")


def test_route_op_round_trips_through_the_record_format() -> None:
    for op in plan_link_up(Connection(name="c", default_route=True, kill_switch=True), V4).ops:
        if isinstance(op, RouteOp):
            assert RouteOp.from_dict(op.to_dict()) == op
