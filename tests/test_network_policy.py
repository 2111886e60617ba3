"""The network policy: by default a feed never reaches loopback, private or other non-public addresses.

Every case connects for real (loopback servers) or is refused before any
socket connects: the suite's audit hook (tests/conftest.py) stops and records
any connection outside loopback, so ``outside_connects == []`` proves that no
packet was sent. These configs set the policy themselves, so the shared
fixtures leave it at its default.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

import faults
from conftest import seed_rss
from faults import FaultServer
from monitor import Monitor, NetworkPolicy, load_config
from monitor.netpolicy import classify, parse_allow_entry

REFUSED = "allow_private_networks = false\n"
HINT = "set [fetch] allow_private_networks = true or add {} to [fetch] allow_networks"
# An address on the public internet, for the proxy tests: it is never contacted,
# because the loopback proxy answers for it.
PUBLIC = "93.184.215.14"


@pytest.fixture
def target():
    """A second loopback server: the internal service that redirects try to reach."""
    server = FaultServer().start()
    server.route("/internal", faults.feed(seed_rss()))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_monitor(open_monitor):
    def build(sources: dict[str, str], fetch: str = REFUSED, extra: str = "") -> Monitor:
        return open_monitor("[fetch]\ntimeout = 2\ndeadline = 5\nmax_per_host = 20\n" + fetch + "".join(
            f'\n[sources.{name}]\nurl = "{url}"\n' for name, url in sources.items()
        ) + extra)

    return build


def port_of(server: FaultServer) -> int:
    return server.httpd.server_address[1]


def stories(monitor: Monitor) -> int:
    return monitor.store.counts()["stories"]


# -- the address classifier ----------------------------------------------------


@pytest.mark.parametrize("address, reason", [
    ("8.8.8.8", None),
    ("93.184.215.14", None),
    ("2606:4700::1111", None),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private network"),
    ("172.16.0.1", "private network"),
    ("172.31.255.255", "private network"),
    ("192.168.1.1", "private network"),
    ("fd12:3456::1", "private network"),
    ("fc00::1", "private network"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified address"),
    ("::", "unspecified address"),
    ("240.0.0.1", "reserved address"),
    ("255.255.255.255", "reserved address"),
    ("192.0.2.1", "reserved address"),
    ("2001:db8::1", "reserved address"),
    ("::ffff:127.0.0.1", "loopback, IPv4-mapped 127.0.0.1"),
    ("::ffff:10.0.0.1", "private network, IPv4-mapped 10.0.0.1"),
    ("::ffff:8.8.8.8", None),
    ("::127.0.0.1", "loopback, IPv4-compatible 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "link-local, NAT64 of 169.254.169.254"),
    ("64:ff9b::808:808", None),
    ("2002:a00:1::1", "private network, 6to4 of 10.0.0.1"),
    ("2002:808:808::1", None),
    # Teredo: server 65.54.227.120, client (obfuscated) 192.0.2.45, a reserved address
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved address, Teredo client 192.0.2.45"),
])
def test_classifier_names_why_an_address_is_not_public(address, reason):
    assert classify(ipaddress.ip_address(address)) == reason


def _refused_v4() -> st.SearchStrategy[ipaddress.IPv4Address]:
    nets = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                                               "192.168.0.0/16", "100.64.0.0/10", "224.0.0.0/4")]
    return st.sampled_from(nets).flatmap(
        lambda n: st.integers(0, n.num_addresses - 1).map(lambda i: n.network_address + i))


@given(_refused_v4())
def test_every_ipv6_form_of_a_refused_ipv4_address_is_refused(v4):
    n = int(v4)
    for v6 in (f"::ffff:{v4}", f"64:ff9b::{v4}", f"2002:{n >> 16:x}:{n & 0xFFFF:x}::1"):
        reason = classify(ipaddress.ip_address(v6))
        assert reason is not None and reason.startswith(classify(v4)), (v4, v6, reason)


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_an_ipv4_address_and_its_mapped_form_get_the_same_verdict(v4):
    assert (classify(v4) is None) == (classify(ipaddress.ip_address(f"::ffff:{v4}")) is None)


@given(_refused_v4())
def test_an_allowed_network_allows_its_addresses_in_both_ip_versions(v4):
    policy = NetworkPolicy(networks=(ipaddress.ip_network(f"{v4}/32"),))
    assert policy.refusal(str(v4), v4) is None
    assert policy.refusal("x", ipaddress.ip_address(f"::ffff:{v4}")) is None
    assert NetworkPolicy().refusal(str(v4), v4) is not None
    assert NetworkPolicy(allow_private=True).refusal(str(v4), v4) is None


@pytest.mark.parametrize("entry, parsed", [
    ("127.0.0.1", ipaddress.ip_network("127.0.0.1/32")),
    ("10.1.0.0/16", ipaddress.ip_network("10.1.0.0/16")),
    ("[::1]", ipaddress.ip_network("::1/128")),
    ("fd00::/8", ipaddress.ip_network("fd00::/8")),
    ("Feeds.Internal.Example.", "feeds.internal.example"),
])
def test_allow_entries_are_addresses_networks_or_host_names(entry, parsed):
    assert parse_allow_entry(entry) == parsed


# -- configured URLs: refused before any packet leaves ---------------------------


@pytest.mark.parametrize("url, address, reason", [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
    ("http://10.0.0.1/feed", "10.0.0.1", "private network"),
    ("https://10.0.0.1/feed", "10.0.0.1", "private network"),
    ("http://[fd00::1]/feed", "fd00::1", "private network"),
    ("http://100.64.0.1/feed", "100.64.0.1", "carrier-grade NAT"),
])
def test_a_configured_internal_address_is_refused_before_connecting(url, address, reason, open_monitor,
                                                                    outside_connects):
    monitor = open_monitor({"internal": url})
    result = monitor.update_source("internal")
    assert result.error == f"refused to connect to {address} ({reason}) for {url}; " + HINT.format(address)
    assert outside_connects == []  # refused before connect(2): not one packet
    row = monitor.store.source_row("internal")
    assert row["status"] == "error" and row["last_error"] == result.error
    assert stories(monitor) == 0


@pytest.mark.parametrize("host, address, reason", [
    *[(spelling, "127.0.0.1", "loopback")
      for spelling in ("127.0.0.1", "2130706433", "0x7f000001", "0x7f.1", "017700000001", "0177.1", "127.1")],
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "loopback, IPv4-mapped 127.0.0.1"),
    ("[::1]", "::1", "loopback"),
    ("0.0.0.0", "0.0.0.0", "unspecified address"),
])
def test_numeric_spellings_of_a_local_address_are_refused_as_configured_urls(host, address, reason, target,
                                                                             open_monitor):
    url = f"http://{host}:{port_of(target)}/internal"
    monitor = open_monitor({"numeric": url})
    result = monitor.update_source("numeric")
    assert result.error == f"refused to connect to {address} ({reason}) for {url}; " + HINT.format(address)
    assert target.hits("/internal") == 0 and stories(monitor) == 0


def test_a_host_name_resolving_to_loopback_is_refused(target, open_monitor):
    url = f"http://localhost:{port_of(target)}/internal"
    monitor = open_monitor({"named": url})
    result = monitor.update_source("named")
    assert result.error == (f"refused to connect to 127.0.0.1 (loopback; localhost resolves to it) for {url}; "
                            + HINT.format("localhost"))
    assert target.hits("/internal") == 0


def test_dns_answers_are_checked_where_the_socket_connects(target, open_monitor, monkeypatch):
    # A resolver that sends a public-looking name to loopback, as a rebinding attacker's DNS would.
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        return real("127.0.0.1" if host == "feeds.rebind.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://feeds.rebind.test:{port_of(target)}/internal"
    refused = open_monitor({"rebound": url})
    assert "refused to connect to 127.0.0.1 (loopback; feeds.rebind.test resolves to it)" in \
        refused.update_source("rebound").error
    assert target.hits("/internal") == 0

    # Allowed by name, the same answer is connected to: the check runs on the resolver's answer.
    allowed = open_monitor({"rebound": url}, fetch='allow_networks = ["feeds.rebind.test"]\n')
    assert allowed.update_source("rebound").new_stories == 2
    assert target.hits("/internal") == 1


# -- redirects: every hop is checked, and a refused one is never remembered ------


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "017700000001", "[::ffff:127.0.0.1]"])
@pytest.mark.parametrize("code", [302, 301])
def test_a_redirect_to_another_local_port_is_refused_and_not_remembered(host, code, fault_server, target,
                                                                       open_monitor):
    location = f"http://{host}:{port_of(target)}/internal"
    fault_server.route("/feed", faults.redirect(location, code))
    # The feed's own host is allowed by name; the redirect leads to an address that is not.
    url = f"http://localhost:{port_of(fault_server)}/feed"
    monitor = open_monitor({"feed": url}, fetch=REFUSED + 'allow_networks = ["localhost"]\n')

    for poll in (1, 2):
        result = monitor.update_source("feed")
        assert result.error.startswith("refused to connect to ") and f"for {location}" in result.error, result.error
        assert fault_server.hits("/feed") == poll  # the configured address is asked again, not the redirect
    assert target.hits("/internal") == 0 and stories(monitor) == 0
    assert monitor.store.source_row("feed")["effective_url"] is None


def test_a_redirect_to_an_octal_dotted_address_is_not_followed(fault_server, target, open_monitor):
    fault_server.route("/feed", faults.redirect(f"http://0177.0.0.1:{port_of(target)}/internal", 301))
    monitor = open_monitor({"feed": f"http://localhost:{port_of(fault_server)}/feed"},
                           fetch=REFUSED + 'allow_networks = ["localhost"]\n')
    assert "Invalid IPv4 address: '0177.0.0.1'" in monitor.update_source("feed").error
    assert target.hits("/internal") == 0 and monitor.store.source_row("feed")["effective_url"] is None


def test_a_redirect_to_the_metadata_service_is_refused_without_a_packet(fault_server, open_monitor, outside_connects):
    fault_server.route("/feed", faults.redirect("http://169.254.169.254/latest/meta-data/", 301))
    monitor = open_monitor({"feed": f"http://localhost:{port_of(fault_server)}/feed"},
                           fetch=REFUSED + 'allow_networks = ["localhost"]\n')
    result = monitor.update_source("feed")
    assert result.error == ("refused to connect to 169.254.169.254 (link-local) for "
                            "http://169.254.169.254/latest/meta-data/; " + HINT.format("169.254.169.254"))
    assert outside_connects == []
    assert monitor.store.source_row("feed")["effective_url"] is None


# -- what lifts the policy ---------------------------------------------------------


def test_the_default_refuses_and_the_switch_or_the_allow_list_lift_it(target, open_monitor, tmp_path):
    url = f"http://127.0.0.1:{port_of(target)}/internal"
    # A configuration that does not mention the policy (written here: the fixtures lift it).
    plain = tmp_path / "plain.toml"
    plain.write_text(f'[monitor]\ndb = "{tmp_path / "plain.db"}"\n[sources.feed]\nurl = "{url}"\n', encoding="utf-8")
    with Monitor.open(load_config(plain, env={})) as monitor:
        assert "refused to connect to 127.0.0.1 (loopback)" in monitor.update_source("feed").error
    assert "refused" in open_monitor({"feed": url}).update_source("feed").error
    assert "refused" in open_monitor({"feed": url}, fetch='allow_networks = ["10.0.0.0/8", "127.0.0.2"]\n') \
        .update_source("feed").error
    assert target.hits("/internal") == 0

    for fetch in ("allow_private_networks = true\n", 'allow_networks = ["127.0.0.1"]\n',
                  'allow_networks = ["127.0.0.0/8"]\n'):
        result = open_monitor({"feed": url}, fetch=fetch).update_source("feed")  # one database: 2 new, then unchanged
        assert result.error is None and result.status == 200, (fetch, result)
    assert stories(open_monitor({})) == 2
    assert target.hits("/internal") == 3


def test_local_files_and_folders_are_not_network_fetches(tmp_path, open_monitor):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(seed_rss())
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "one.txt").write_text("A title\n\nA body about nothing in particular.\n", encoding="utf-8")
    monitor = open_monitor({"file": feed.as_uri(), "path": str(feed)},
                           extra=f'\n[sources.folder]\nurl = "{folder}"\nkind = "directory"\n')
    for name in ("file", "path", "folder"):
        assert monitor.update_source(name).error is None, name
    assert stories(monitor) == 5  # two feeds of two entries, one article


# -- a proxy: the operator's own, on any address; the destination is still checked ----


def test_a_loopback_proxy_is_used_while_each_destination_is_checked(feed_server, open_monitor, outside_connects):
    # The loopback server is the proxy: it answers absolute-form requests for the public address itself.
    public = f"http://{PUBLIC}/feed"
    feed_server.serve(public, seed_rss())
    feed_server.serve(f"http://{PUBLIC}/moved", b"", status=302, headers={"Location": "http://10.1.2.3/feed"})
    monitor = open_monitor(
        {"public": public, "internal": "http://192.168.0.10/feed", "moved": f"http://{PUBLIC}/moved",
         "named": "http://localhost/feed", "secure": "https://10.9.9.9/feed"},
        fetch=REFUSED + f'proxy = "{feed_server.base}"\n',
    )
    results = {r.source: r for r in monitor.run_once(deliver=False)}

    assert results["public"].error is None and results["public"].new_stories == 2
    assert [r.path for r in feed_server.requests].count(public) == 1
    assert results["internal"].error == ("refused to connect to 192.168.0.10 (private network) for "
                                         "http://192.168.0.10/feed; " + HINT.format("192.168.0.10"))
    assert results["moved"].error.startswith("refused to connect to 10.1.2.3 (private network) for http://10.1.2.3/feed")
    assert results["named"].error.startswith("refused to connect to 127.0.0.1 (loopback; localhost resolves to it)")
    assert results["secure"].error.startswith("refused to connect to 10.9.9.9 (private network)")  # no CONNECT
    # The proxy was asked for the public feed and the redirect, never for a refused address.
    assert sorted(r.path for r in feed_server.requests) == [public, f"http://{PUBLIC}/moved"]
    assert outside_connects == []


# -- configuration ------------------------------------------------------------------


def test_check_names_file_and_key_of_each_bad_policy_setting(make_config, cli_run):
    path = make_config('[fetch]\nallow_private_networks = "yes"\n'
                       'allow_networks = ["127.0.0.1", "10.1.0.5/16", "http://feeds.example", "0x7f000001", 5]\n'
                       'proxy = "squid:3128"\n')
    out = cli_run("check", "-c", path).output
    assert f"{path}: fetch.allow_private_networks: expected true or false" in out
    assert f"{path}: fetch.allow_networks: expected a list of strings" in out
    path = make_config('[fetch]\nallow_networks = ["127.0.0.1", "10.1.0.5/16", "http://feeds.example", "0x7f000001"]\n'
                       'proxy = "squid:3128"\n')
    result = cli_run("check", "-c", path)
    assert result.exit_code != 0
    lines = result.output.splitlines()
    for key, words in [("fetch.allow_networks[1]", "did you mean '10.1.0.0/16'"),
                       ("fetch.allow_networks[2]", "is not an IP address"),
                       ("fetch.allow_networks[3]", "unusual notation"),
                       ("fetch.proxy", "http:// or https:// proxy URL")]:
        assert any(f"{path}: {key}: " in line and words in line for line in lines), (key, result.output)
    assert not any("allow_networks[0]" in line for line in lines)


def test_behind_a_proxy_a_host_allowed_by_name_is_not_resolved_here(feed_server, open_monitor, monkeypatch):
    # Proxied networks often resolve names only at the proxy: ours knows none of these.
    asked = []
    real = socket.getaddrinfo

    def no_internal_dns(host, *args, **kwargs):
        if str(host).endswith(".internal.example"):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_internal_dns)
    listed, unlisted = "http://feeds.internal.example/feed", "http://other.internal.example/feed"
    feed_server.serve(listed, seed_rss())
    monitor = open_monitor({"listed": listed, "unlisted": unlisted},
                           fetch=f'allow_networks = ["feeds.internal.example"]\nproxy = "{feed_server.base}"\n')
    assert monitor.update_source("listed").new_stories == 2
    error = monitor.update_source("unlisted").error
    assert error.startswith("cannot resolve other.internal.example to check it against the network policy "
                            "before handing it to fetch.proxy"), error
    assert asked == ["other.internal.example"]
    assert [r.path for r in feed_server.requests] == [listed]
