"""Delivering alerts from a PostgreSQL database: one sender per channel, chosen by the channel's lease.

On SQLite one process holds the database's sender lock and sends every
channel. On PostgreSQL any number of processes (fleet workers, ``monitor
once``, ``monitor alerts --retry``) share the outbox, so each channel is a
lease of its own (a ``fleet_leases`` row of kind ``channel``,
:mod:`monitor.leases`): a dispatcher claims the lease of a channel with due
rows, sends that channel's rows, and gives the lease back. Two processes
send on two channels at once, never on the same one, so a channel's
``rate_limit`` and ``digest`` stay exact with any number of workers.

Every outbox write made under the lease (the claim of a row, "sent", a retry,
a deferral, the digest timetable) is fenced by it
(:meth:`monitor.storage.Storage.fenced`), and the lease is renewed right
before each message goes out. A sender paused past its lease (SIGSTOP, a
stall) therefore cannot mark a row sent or start another send when it
continues: its write is refused (:class:`~monitor.errors.LeaseLost`).

Rows a sender left ``sending`` (it died, or lost its lease, mid-send) are put
back in the queue by the next holder of the channel's lease as soon as it has
claimed it, and sent again: the one duplicate window (the receiver got the
message, the row was never marked sent), which the webhook's
``Idempotency-Key`` (the outbox row id) lets a receiver close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .errors import LeaseLost
from .leases import CHANNEL, Coordinator, Lease, lease_fence
from .outbox import DispatchResult, Tally, dispatch_channel, iso_now, pull_in_future_retries, recover_interrupted

if TYPE_CHECKING:
    import psycopg

    from .app import Monitor

__all__ = ["ChannelDispatcher"]

log = logging.getLogger("monitor.channel_dispatch")

DEFAULT_LEASE = 60.0


class ChannelDispatcher:
    """Sends due alerts channel by channel, each under its lease.

    :param monitor: the channels and the store.
    :param connection: lends an autocommit connection to the database (a pool's ``connection``).
    :param worker: who holds the leases (a fleet worker's id, or one made up for a command).
    :param lease: seconds a channel lease lasts unless renewed (it is renewed before every send).
    """

    def __init__(self, monitor: Monitor, connection: Callable[[], AbstractContextManager[psycopg.Connection]],
                 worker: str, lease: float = DEFAULT_LEASE):
        self.monitor = monitor
        self.connection = connection
        self.worker = worker
        self.lease = lease
        self._schema_ready = False

    def _coordinated(self, func: Callable[[Coordinator], Any]) -> Any:
        with self.connection() as conn:
            coord = Coordinator(conn, self.worker)
            if not self._schema_ready:
                coord.create_schema()
                self._schema_ready = True
            return func(coord)

    def dispatch(self, *, until_done: bool = False) -> DispatchResult:
        """Send what is due on every channel whose lease this process can take now: at most one batch
        per channel, or with ``until_done`` round after round until a round has nothing left to send
        (``monitor once``, ``monitor alerts --retry``), as :func:`monitor.outbox.dispatch_due` does.

        ``held_by`` names the holders of the channels left to them, when nothing else was tried.
        """
        tally = Tally()
        tried_any = False
        while True:
            handled = tally.next_round()
            tried, held = self._dispatch_round(tally)
            tried_any = tried_any or tried
            if not until_done or tally.round_was_empty(handled):
                return tally.result(held_by=self._holders(held) if held and not tried_any else None)

    def _dispatch_round(self, tally: Tally) -> tuple[bool, list[str]]:
        """One batch on each channel with due rows whose lease is free: (whether any was tried, those held)."""
        channels = [name for name in self.monitor.store.channels_to_dispatch(iso_now())
                    if name not in self.monitor.unavailable_channels]
        if not channels:
            return False, []
        self._coordinated(lambda coord: coord.ensure(CHANNEL, channels))
        held: list[str] = []
        for name in channels:
            lease = self.claim(name)
            if lease is None:
                held.append(name)
                continue
            try:
                self._send_channel(lease, tally)
            except LeaseLost as exc:
                log.warning("channel %s: %s; its next holder sends what is left", name, exc)
            finally:
                self.release(lease)
        return len(channels) > len(held), held

    # What a fleet worker overrides, to keep the lease renewed by its heartbeat while a send is slow.

    def claim(self, channel: str) -> Lease | None:
        """The lease of ``channel``, if nobody holds it."""
        return self._coordinated(lambda coord: coord.claim(CHANNEL, self.lease, [channel]))

    def renew(self, lease: Lease) -> Lease:
        """``lease`` pushed out by its full time, checked with the database.

        :raises LeaseLost: it expired or another process claimed it.
        """
        return self._coordinated(lambda coord: coord.renew(lease, self.lease))

    def release(self, lease: Lease) -> None:
        """Give ``lease`` back (nothing happens when it is no longer ours)."""
        self._coordinated(lambda coord: coord.release(lease))

    def _send_channel(self, lease: Lease, tally: Tally) -> None:
        def before_send() -> None:
            # Checked with the database, not a local clock: a sender that lost the lease sends nothing more.
            self.renew(lease)

        with self.monitor.store.fenced(lease_fence(lease)):
            # Claimed just now: a row of this channel still 'sending' was left by an earlier holder.
            recover_interrupted(self.monitor, channel=lease.name)
            pull_in_future_retries(self.monitor, channel=lease.name)
            dispatch_channel(self.monitor, lease.name, tally, before_send=before_send)

    def _holders(self, channels: list[str]) -> str:
        rows = self._coordinated(lambda coord: coord.holders(CHANNEL, channels))
        owners = sorted({row["owner"] for row in rows if row["owner"]})
        return "fleet worker " + ", ".join(owners) if owners else "another monitor process"
