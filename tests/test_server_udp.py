"""SocketServer UDP: udp, udp_listen, udp_dial, udp_connect, udp_send with
an address or the default destination, SOCKET_UDP events with address,
IPv4 and IPv6, family mismatch, close. Peers are gevent UDP sockets."""

from __future__ import annotations

import socket as stdlib_socket

import pytest

from gsocket.events import SOCKET_CLOSE, SOCKET_ERROR, SOCKET_UDP

pytest_plugins = ["helpers"]                # fixtures: events, closer

from helpers import bound_gevent_socket, info_row  # noqa: E402


def udp_peer(closer, host="127.0.0.1"):
    sock, port = bound_gevent_socket(closer, stdlib_socket.SOCK_DGRAM, host)
    sock.settimeout(5)
    return sock, port


def test_udp_server_echo_ipv4(server, events, closer):
    # skynet test 46: 20 datagrams in, 20 replies out, addresses exact.
    server_id = server.udp("127.0.0.1", 0, opaque=5)
    port = server.address(server_id)[1]
    events.assert_none(0.05)               # no OPEN for UDP sockets
    client, cport = udp_peer(closer)
    for i in range(20):
        client.sendto(b"hello %d" % i, ("127.0.0.1", port))
    for i in range(20):
        message = events.expect(SOCKET_UDP, server_id)
        assert message.data == b"hello %d" % i and message.ud == len(message.data)
        assert message.opaque == 5
        assert message.address == ("127.0.0.1", cport)
        assert server.udp_address(message) == ("127.0.0.1", cport)
        assert server.udp_send(server_id, message.address, b"OK " + message.data) is True
    replies = [client.recvfrom(100) for _ in range(20)]
    assert [r[0] for r in replies] == [b"OK hello %d" % i for i in range(20)]
    assert {r[1] for r in replies} == {("127.0.0.1", port)}
    row = info_row(server, server_id)
    assert row.type == "UDP" and row.read == sum(len(b"hello %d" % i) for i in range(20))
    assert row.write == sum(len(r[0]) for r in replies)


def test_udp_unbound_client_with_udp_connect(server, events, closer):
    peer, pport = udp_peer(closer)
    client_id = server.udp()
    # no default destination yet: False and nothing sent
    assert server.udp_send(client_id, None, b"lost") is False
    assert server.send(client_id, b"lost") is False
    server.udp_connect(client_id, "127.0.0.1", pport)
    assert info_row(server, client_id).name == f"127.0.0.1:{pport}"
    assert server.udp_send(client_id, None, b"one") is True
    assert server.send(client_id, b"two") is True
    assert server.send_lowpriority(client_id, [b"thr", "ee"]) is True
    got = [peer.recvfrom(100) for _ in range(3)]
    assert [g[0] for g in got] == [b"one", b"two", b"three"]    # no "lost" first
    source = got[0][1]
    peer.sendto(b"back", source)
    message = events.expect(SOCKET_UDP, client_id, data=b"back")
    assert message.address == ("127.0.0.1", pport)


def test_udp_dial_sets_default_destination(server, events, closer):
    peer, pport = udp_peer(closer)
    dial_id = server.udp_dial("127.0.0.1", pport, opaque=8)
    assert server.send(dial_id, b"dialed") is True
    data, source = peer.recvfrom(100)
    assert data == b"dialed"
    peer.sendto(b"reply", source)
    message = events.expect(SOCKET_UDP, dial_id, data=b"reply")
    assert message.opaque == 8 and message.address == ("127.0.0.1", pport)


def test_udp_listen_and_dial_ipv6(server, events, closer):
    # skynet test 47
    listen_id = server.udp_listen("::1", 0)
    host, port = server.address(listen_id)
    assert host == "::1" and port > 0
    dial_id = server.udp_dial("::1", port)
    assert server.udp_send(dial_id, None, b"v6 hello") is True
    message = events.expect(SOCKET_UDP, listen_id, data=b"v6 hello")
    assert message.address[0] == "::1"
    assert server.udp_send(listen_id, message.address, b"v6 reply") is True
    reply = events.expect(SOCKET_UDP, dial_id, data=b"v6 reply")
    assert reply.address == ("::1", port)
    # and with a plain IPv6 peer
    peer, pport = udp_peer(closer, "::1")
    assert server.udp_send(listen_id, ("::1", pport), b"to peer") is True
    data, source = peer.recvfrom(100)
    assert data == b"to peer" and source[:2] == ("::1", port)


def test_udp_family_mismatch(server, events, closer):
    v4 = server.udp("127.0.0.1", 0)
    peer6, p6port = udp_peer(closer, "::1")
    server.udp_connect(v4, "::1", p6port)
    events.expect(SOCKET_ERROR, v4, data="protocol mismatch")
    assert server.udp_send(v4, None, b"x") is False           # still no default
    assert server.udp_send(v4, ("::1", p6port), b"x") is False
    v6 = server.udp_listen("::1", 0)
    assert server.udp_send(v6, ("127.0.0.1", 9), b"x") is False
    peer6.settimeout(0.1)
    with pytest.raises(OSError):      # socket.timeout is an OSError
        peer6.recvfrom(10)
    events.assert_none(0.05)


def test_udp_close_and_sends_after(server, events, closer):
    peer, pport = udp_peer(closer)
    udp_id = server.udp_dial("127.0.0.1", pport)
    server.close(udp_id)
    events.expect(SOCKET_CLOSE, udp_id)
    assert server.udp_send(udp_id, None, b"x") is False
    assert server.udp_send(udp_id, ("127.0.0.1", pport), b"x") is False
    assert server.send(udp_id, b"x") is False
    assert info_row(server, udp_id) is None
    server.close(udp_id)
    events.assert_none(0.05)


def test_udp_oversized_datagram_fails_without_harm(server, events, closer):
    peer, pport = udp_peer(closer)
    udp_id = server.udp_dial("127.0.0.1", pport)
    assert server.udp_send(udp_id, None, b"x" * 70000) is False
    assert server.udp_send(udp_id, None, b"small") is True
    assert peer.recvfrom(100)[0] == b"small"
    assert info_row(server, udp_id) is not None


def test_udp_to_closed_port_keeps_socket(server, events, closer):
    # The ICMP "port unreachable" does not reach an unconnected socket; at
    # most an ERROR "Connection refused" is reported, and the socket lives on.
    probe, dead_port = udp_peer(closer)
    probe.close()
    peer, pport = udp_peer(closer)
    udp_id = server.udp_dial("127.0.0.1", dead_port)
    server.udp_send(udp_id, None, b"nobody")
    got = events.quiet(0.2)
    assert all(m.type == SOCKET_ERROR and m.data == "Connection refused" for m in got)
    server.udp_connect(udp_id, "127.0.0.1", pport)
    assert server.udp_send(udp_id, None, b"somebody") is True
    data, source = peer.recvfrom(100)
    assert data == b"somebody"
    peer.sendto(b"ack", source)
    events.expect(SOCKET_UDP, udp_id, data=b"ack")


def test_udp_bad_arguments(server, events):
    udp_id = server.udp()
    with pytest.raises(TypeError):
        server.udp_send(udp_id, "127.0.0.1:9", b"x")
    with pytest.raises(TypeError):
        server.udp_send(udp_id, ("127.0.0.1", 9), 42)
    with pytest.raises(ValueError):
        server.udp_send(udp_id, ("127.0.0.1", 70000), b"x")
    with pytest.raises(ValueError):
        server.udp_dial(None, 9)
    with pytest.raises(TypeError):
        server.udp("127.0.0.1", "port")
    assert server.udp_send(999999, ("127.0.0.1", 9), b"x") is False
    server.udp_connect(999999, "127.0.0.1", 9)          # unknown id: ignored
    events.assert_none(0.05)
