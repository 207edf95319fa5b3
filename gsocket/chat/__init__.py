"""The chat server (docs/chat.md): standalone by default, scaled out over Redis.

Run it with ``gsocket-chat`` or ``python -m gsocket chat`` (see
:mod:`gsocket.cli`); embed it with :class:`ChatServer`.

Layout, one job per module:

==================  =====================================================
``events``          what happens (Said, Private, Joined, ...), door-independent
``protocol``        the line protocol, sans-I/O: framing, names, commands
``render``          events -> the line protocol's text lines
``limits``          the flood policy (a leaky bucket), sans-I/O
``interfaces``      Session (the door interface), Cluster, User, Outbox
``core``            users, rooms, history; each call returns an Outbox
``codec``           events <-> JSON between nodes
``line_door``       the line-protocol door (TCP, one greenlet per client)
``redis_bridge``    the Cluster over Redis (pub/sub, keys with expiry)
``server``          ChatService (runs the core, carries out outboxes), ChatServer
==================  =====================================================

Adding a door (IRC, the web)
----------------------------
A door is a module that accepts its clients and, for each one, makes a
session object with two methods and two attributes (the
:class:`~gsocket.chat.core.Session` protocol)::

    class MySession:
        door = "irc"                  # shown in logs and the console
        peer = "host:port"
        def deliver(self, event): ... # render one gsocket.chat.events event; never block
        def close(self, reason): ...  # close after queued output; never block

and drives the :class:`~gsocket.chat.server.ChatService` from the
client's greenlet::

    user = service.connect(session)              # guest nick, lobby, history, greeting
    service.line(user, "/join dev")              # the line protocol (the web door)
    service.perform(service.core.join(user, "dev", leave_others=False))   # or operations (IRC)
    service.perform(service.core.say(user, "hi", room="dev"))
    service.disconnect(user, "quit")             # always, when the client is gone

Every core operation (``join``, ``part``, ``say``, ``private``, ``rename``,
``members``, ``room_counts``) works the same whichever door and node the
users are on: one nick namespace, one set of rooms.
"""

from __future__ import annotations

from .core import ChatCore, Cluster, Outbox, Session, User
from .server import ChatServer, ChatService

__all__ = ["ChatServer", "ChatService", "ChatCore", "Cluster", "Outbox", "Session", "User"]
