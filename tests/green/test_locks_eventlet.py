"""eventlet-only: the private helpers eventlet.green.zmq names, which code may reach for."""

from __future__ import annotations

import pytest

eventlet = pytest.importorskip("eventlet")

import zmq_async.green.eventlet as zmq  # noqa: E402 - after the skip


def test_queue_lock_is_reentrant_and_fifo():
    lock = zmq._QueueLock()
    order: list[int] = []

    def take(n: int) -> None:
        with lock:
            order.append(n)

    lock.acquire()
    lock.acquire()  # re-entrant
    assert lock
    waiters = [eventlet.spawn(take, n) for n in range(3)]
    eventlet.sleep(0)
    lock.release()
    eventlet.sleep(0)
    assert order == []  # still held once
    lock.release()
    with eventlet.Timeout(5):
        for waiter in waiters:
            waiter.wait()
    assert order == [0, 1, 2]
    assert not lock


def test_queue_lock_release_unheld_raises():
    lock = zmq._QueueLock()
    with pytest.raises(zmq.LockReleaseError):
        lock.release()


def test_an_interrupted_waiter_gives_up_its_turn():
    lock = zmq._QueueLock()
    got: list[str] = []

    def impatient() -> None:
        try:
            with eventlet.Timeout(0.01), lock:
                got.append("impatient")
        except eventlet.Timeout:
            got.append("gave up")

    def patient() -> None:
        with lock:
            got.append("patient")

    lock.acquire()
    first = eventlet.spawn(impatient)
    second = eventlet.spawn(patient)
    with eventlet.Timeout(5):
        first.wait()
        lock.release()
        second.wait()
    assert got == ["gave up", "patient"]
    assert not lock


def test_blocked_thread_wakes_once_and_refuses_a_second_sleeper():
    blocked = zmq._BlockedThread()
    woke = eventlet.Event()

    def sleeper() -> None:
        blocked.block()
        woke.send(True)

    eventlet.spawn(sleeper)
    eventlet.sleep(0)
    assert blocked
    with pytest.raises(RuntimeError):
        blocked.block()
    assert blocked.wake() is True
    assert blocked.wake() is False  # already being woken
    with eventlet.Timeout(5):
        assert woke.wait()
    assert not blocked
    assert blocked.wake() is False  # no one parked


def test_blocked_thread_deadline():
    blocked = zmq._BlockedThread()
    hub = eventlet.hubs.get_hub()
    with eventlet.Timeout(5):
        blocked.block(deadline=hub.clock() + 0.01)
    assert not blocked
