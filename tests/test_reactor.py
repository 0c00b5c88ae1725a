"""The reactor's rules, tested without an event loop: a fake driver runs callbacks by hand.

Real libzmq sockets over inproc (delivery is immediate), so the edge-triggered FD and EVENTS
behave as they do in production; only time and scheduling are fake.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from zmq_async import _ops, _reactor
from zmq_async._bench.scale import bind_pulls
from zmq_async._reactor import (
    BATCH,
    RECHECK_FIRST,
    RECHECK_MAX,
    RECHECK_PER_SOCKET,
    Reactor,
    Waiter,
    rechecker_for,
)

NOBLOCK = int(zmq.NOBLOCK)


class FakeTimer:
    def __init__(self, driver: FakeDriver, when: float, callback: Callable[..., object], args: Any):
        self.driver, self.when, self.callback, self.args = driver, when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeDriver:
    """Records what the reactor asks for; the test decides when things run."""

    def __init__(self) -> None:
        self.now = 0.0
        self.watched: dict[tuple[int, bool], list[Callable[[], object]]] = {}
        self.soon: list[Callable[[], object]] = []
        self.timers: list[FakeTimer] = []

    def watch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        self.watched.setdefault((fd, writable), []).append(callback)

    def unwatch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        callbacks = self.watched.get((fd, writable), [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self.watched.pop((fd, writable), None)

    def call_soon(self, callback: Callable[[], object]) -> None:
        self.soon.append(callback)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer(self, self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def may_unwatch_here(self) -> bool:
        return True  # the test runs everything in its own thread

    def run_soon(self) -> int:
        """Run the callbacks scheduled so far (not those they schedule); how many ran."""
        ready, self.soon = self.soon, []
        for callback in ready:
            callback()
        return len(ready)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t.when <= self.now and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due and not t.cancelled]
        for timer in sorted(due, key=lambda t: t.when):
            timer.callback(*timer.args)

    def live_timers(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def fd_readable(self, fd: int) -> bool:
        return bool(select.select([fd], [], [], 0)[0])

    def fire_fd(self, fd: int) -> None:
        """What a loop does when the FD is readable: call its watchers."""
        for callback in list(self.watched.get((fd, False), [])):
            callback()


class Result:
    """A minimal Completion."""

    def __init__(self) -> None:
        self._done = False
        self.cancelled = False
        self.value: Any = None
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any, /) -> None:
        assert not self._done
        self._done, self.value = True, result

    def set_exception(self, exception: BaseException, /) -> None:
        assert not self._done
        self._done, self.error = True, exception

    def cancel(self) -> bool:
        if self._done:
            return False
        self._done = self.cancelled = True
        return True


_names = itertools.count()


@pytest.fixture
def sockets() -> Iterator[tuple[zmq.Socket[Any], zmq.Socket[Any], zmq.Context[Any]]]:
    ctx: zmq.Context[Any] = zmq.Context()
    url = f"inproc://reactor-{next(_names)}"
    pull = ctx.socket(zmq.PULL)
    pull.bind(url)
    push = ctx.socket(zmq.PUSH)
    push.connect(url)
    yield push, pull, ctx
    ctx.destroy(linger=0)


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


def recv_waiter(post: Callable[[Any], Any] | None = None) -> tuple[Waiter, Result]:
    result = Result()
    return Waiter(result, _ops.recv, (NOBLOCK, True, False), post), result


def test_waiter_registers_the_fd_once_and_dispatch_serves_it(sockets, driver):
    push, pull, _ = sockets
    reactor = Reactor(pull, driver)
    waiter, result = recv_waiter()
    reactor.wait_recv(waiter)
    reactor.wait_recv(recv_waiter()[0])
    assert driver.watched == {(reactor.fd, False): [reactor.dispatch]}
    push.send(b"hello")
    reactor.dispatch()
    assert result.value == b"hello"


class TestEvents:
    """``Reactor.events()`` reads EVENTS through ``zmq_poll``: it must mean what ``get`` does."""

    def test_events_are_those_get_reports_and_consume_the_edge_as_get_does(self, sockets):
        push, pull, _ = sockets
        reactor = Reactor(pull)
        assert reactor.events() == zmq.Socket.get(pull, zmq.EVENTS) == 0
        push.send(b"m")
        fd = reactor.fd
        assert select.select([fd], [], [], 0)[0]
        assert reactor.events() == zmq.POLLIN
        assert not select.select([fd], [], [], 0)[0]  # re-armed: rule 1 relies on it
        assert Reactor(push).events() == zmq.POLLOUT

    @pytest.mark.parametrize("stdin_readable", [False, True])
    def test_a_closed_socket_raises_enotsock_whatever_fd_0_says(self, sockets, stdin_readable):
        # pyzmq polls file descriptor 0 in place of a closed socket.
        _, pull, _ = sockets
        reactor = Reactor(pull)
        pull.close()
        saved = os.dup(0)
        r, w = os.pipe()
        try:
            os.dup2(r, 0)
            if stdin_readable:
                os.write(w, b"x")
            with pytest.raises(zmq.ZMQError) as info:
                reactor.events()
            assert info.value.errno == zmq.ENOTSOCK
            assert reactor.recv_ready()  # so the receive runs, and raises the same error
        finally:
            os.dup2(saved, 0)
            for fd in (saved, r, w):
                os.close(fd)

    def test_a_terminated_context_raises_eterm(self):
        ctx: zmq.Context[Any] = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.linger = 0
        reactor = Reactor(pull)
        terminator = threading.Thread(target=ctx.term)
        terminator.start()
        try:
            for _ in range(500):  # term() signals the socket from its thread
                if select.select([reactor.fd], [], [], 0)[0]:
                    break
                terminator.join(0.01)
            with pytest.raises(zmq.ZMQError) as info:
                reactor.events()
            assert info.value.errno == zmq.ETERM
        finally:
            pull.close()
            terminator.join(5)
        assert not terminator.is_alive()


class TestRule1NoLostWakeup:
    def test_user_events_read_consumes_the_edge_and_after_op_recovers_it(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        push.send(b"m")
        assert driver.fd_readable(reactor.fd)
        # The user reads EVENTS: the FD edge is consumed, the message is still there.
        assert zmq.Socket.get(pull, zmq.EVENTS) & zmq.POLLIN
        assert not driver.fd_readable(reactor.fd)
        reactor.after_op()
        assert driver.run_soon() == 1
        assert result.value == b"m"

    def test_touch_we_cannot_see_is_caught_by_the_recheck_timer(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        push.send(b"m")
        shadow: zmq.Socket[Any] = zmq.Socket.shadow(pull.underlying)
        assert shadow.poll(0) == zmq.POLLIN  # a shadow's poll eats the edge, unseen
        assert not driver.fd_readable(reactor.fd)
        driver.advance(RECHECK_FIRST)
        assert result.value == b"m"

    def test_recheck_backs_off_and_stops_when_no_one_waits(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        delays = []
        for _ in range(4):
            (timer,) = driver.live_timers()
            delays.append(timer.when - driver.now)
            driver.advance(timer.when - driver.now)
        assert delays == sorted(delays) and delays[-1] > delays[0]
        result.cancel()
        (timer,) = driver.live_timers()
        driver.advance(timer.when - driver.now)
        assert driver.live_timers() == []  # idle: no timer, no CPU
        assert not reactor.recvq

    def test_operation_in_one_direction_rechecks_the_other(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        reactor.wait_recv(recv_waiter()[0])
        poll = Result()
        reactor.wait_poll(Waiter(poll, None, mask=zmq.POLLIN), None)
        # queueing the poll waiter behind a recv waiter re-checks EVENTS for it
        assert driver.soon == [reactor._kicked]

    def test_dispatch_rearms_the_fd_while_waiters_remain(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        first, first_result = recv_waiter()
        second, second_result = recv_waiter()
        reactor.wait_recv(first)
        reactor.wait_recv(second)
        driver.run_soon()
        push.send(b"a")
        reactor.dispatch()
        assert first_result.value == b"a" and not second_result.done()
        # dispatch ended on a failed receive (only receivers wait), which re-arms the FD
        # like an EVENTS read: it is quiet, and the next change signals it
        assert not driver.fd_readable(reactor.fd)
        push.send(b"b")
        assert driver.fd_readable(reactor.fd)
        driver.fire_fd(reactor.fd)
        assert second_result.value == b"b"

    def test_a_wakeup_with_no_one_waiting_rearms_the_fd(self, sockets, driver):
        """Else a level-triggered loop would call dispatch again and again (busy loop)."""
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        push.send(b"unclaimed")
        assert driver.fd_readable(reactor.fd)
        reactor.dispatch()
        assert not driver.fd_readable(reactor.fd)
        assert pull.recv() == b"unclaimed"

    def test_a_wakeup_with_only_cancelled_receivers_rearms_the_fd(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        result.cancel()
        push.send(b"unclaimed")
        assert driver.fd_readable(reactor.fd)
        reactor.dispatch()
        assert not driver.fd_readable(reactor.fd)
        assert not reactor.recvq
        assert pull.recv() == b"unclaimed"

    def test_a_served_receiver_whose_look_finds_nothing_ends_the_dispatch(self, sockets, driver):
        # A stream's receiver: it receives, looks (recv_ready), and is re-queued by its
        # completion. Its look was the last touch and re-armed the FD: dispatch must not try
        # it again (a failed receive builds a zmq.Again), and the next message must wake it.
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        tries: list[str] = []
        received: list[Any] = []

        class Requeue(Result):
            def set_result(self, result: Any, /) -> None:
                received.append(result)
                reactor.recvq.append(waiter)

        def drain(socket: zmq.Socket[Any]) -> Any:
            tries.append("recv")
            message = _ops.recv(socket, NOBLOCK, True, False)
            assert not reactor.recv_ready()
            return message

        waiter = Waiter(Requeue(), drain)
        reactor.wait_recv(waiter)
        for n in range(3):
            push.send(b"%d" % n)
            assert driver.fd_readable(reactor.fd)
            driver.fire_fd(reactor.fd)
            assert tries == ["recv"] * (n + 1)  # one receive per message, none that fails
            assert not driver.fd_readable(reactor.fd)
        assert received == [b"0", b"1", b"2"]
        assert list(reactor.recvq) == [waiter]


class TestRecheckIsSharedAndBounded:
    """Rule 1's re-check: one per driver, flat in the number of waiting sockets, bounded."""

    @staticmethod
    def pulls(ctx: zmq.Context[Any], n: int) -> list[zmq.Socket[Any]]:
        return bind_pulls(ctx, n, f"inproc://recheck-{next(_names)}-")

    @staticmethod
    def run_timers_for(driver: FakeDriver, seconds: float) -> list[float]:
        """Run the timers due in the next ``seconds``, one by one; the delays between them."""
        end, delays = driver.now + seconds, []
        while (timers := driver.live_timers()) and min(t.when for t in timers) <= end:
            when = min(t.when for t in timers)
            delays.append(when - driver.now)
            driver.advance(when - driver.now)
        driver.advance(end - driver.now)
        return delays

    def test_many_waiting_sockets_share_one_timer(self, sockets, driver):
        _, _, ctx = sockets
        reactors = [Reactor(pull, driver) for pull in self.pulls(ctx, 200)]
        for reactor in reactors:
            reactor.wait_recv(recv_waiter()[0])
        assert len(driver.live_timers()) == 1
        self.run_timers_for(driver, 30)
        # long idle: every reactor is in the oldest generation, behind a single timer
        (timer,) = driver.live_timers()
        assert timer.when - driver.now <= RECHECK_MAX
        assert len(rechecker_for(driver)) == 200

    def test_a_long_wait_stranded_by_an_unseen_touch_is_served_within_the_bound(
        self, sockets, driver
    ):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        self.run_timers_for(driver, 60)  # backed off as far as it goes
        push.send(b"m")
        shadow: zmq.Socket[Any] = zmq.Socket.shadow(pull.underlying)
        assert shadow.poll(0) == zmq.POLLIN  # eats the edge, unseen
        self.run_timers_for(driver, RECHECK_MAX)
        assert result.value == b"m"
        # a found edge makes that socket young again: looked at soon while it still waits
        reactor.wait_recv(recv_waiter()[0])
        assert min(t.when for t in driver.live_timers()) - driver.now <= RECHECK_FIRST

    def test_with_many_sockets_the_interval_grows_per_socket_and_still_bounds(
        self, sockets, driver, monkeypatch
    ):
        push, pull, ctx = sockets
        # 100 sockets at 50 ms each stand for 10,000 at RECHECK_PER_SOCKET: same bound, 5 s
        per_socket = RECHECK_PER_SOCKET * 100
        monkeypatch.setattr(_reactor, "RECHECK_PER_SOCKET", per_socket)
        others = [Reactor(p, driver) for p in self.pulls(ctx, 99)]
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        for each in others:
            each.wait_recv(recv_waiter()[0])
        reactor.wait_recv(waiter)
        self.run_timers_for(driver, 60)
        bound = 100 * per_socket
        assert bound > RECHECK_MAX
        first, *steady = self.run_timers_for(driver, 3 * bound)
        assert first <= bound and steady == [pytest.approx(bound)] * 2  # one sweep per bound
        push.send(b"m")
        assert zmq.Socket.shadow(pull.underlying).poll(0) == zmq.POLLIN
        self.run_timers_for(driver, bound)
        assert result.value == b"m"

    def test_close_and_rebind_leave_the_recheck(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        reactor.wait_recv(recv_waiter()[0])
        other = FakeDriver()
        reactor.rebind(other)
        assert len(rechecker_for(driver)) == 0 and driver.live_timers() == []
        reactor.wait_recv(recv_waiter()[0])
        assert len(rechecker_for(other)) == 1
        reactor.close()
        assert len(rechecker_for(other)) == 0 and other.live_timers() == []


class TestRule2NoLostMessage:
    def test_cancelled_waiter_never_consumes(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        first, first_result = recv_waiter()
        second, second_result = recv_waiter()
        reactor.wait_recv(first)
        reactor.wait_recv(second)
        first_result.cancel()
        push.send(b"only")
        reactor.dispatch()
        assert second_result.value == b"only"
        assert first_result.value is None

    def test_cancelled_decoding_waiter_leaves_the_message_in_the_socket(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter(_ops.json_loader({}))
        reactor.wait_recv(waiter)
        result.cancel()
        push.send(b'{"a": 1}')
        reactor.dispatch()
        assert pull.recv(zmq.NOBLOCK) == b'{"a": 1}'

    def test_decoding_error_is_delivered_not_dropped(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter(_ops.json_loader({}))
        reactor.wait_recv(waiter)
        push.send(b"not json")
        reactor.dispatch()
        assert isinstance(result.error, ValueError)

    def test_dead_waiters_are_swept_so_the_queue_stays_bounded(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        for _ in range(10_000):
            waiter, result = recv_waiter()
            reactor.wait_recv(waiter)
            result.cancel()
        assert len(reactor.recvq) <= 2 * 64 + 1


class TestRule3FifoAndBatches:
    def test_receivers_are_served_in_arrival_order(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        results = []
        for _ in range(5):
            waiter, result = recv_waiter()
            reactor.wait_recv(waiter)
            results.append(result)
        for i in range(5):
            push.send(b"%d" % i)
        reactor.dispatch()
        assert [r.value for r in results] == [b"0", b"1", b"2", b"3", b"4"]

    def test_one_dispatch_serves_a_bounded_batch_then_yields(self, sockets, driver):
        push, pull, _ = sockets
        reactor = Reactor(pull, driver)
        results = []
        for _ in range(BATCH + 10):
            waiter, result = recv_waiter()
            reactor.wait_recv(waiter)
            results.append(result)
        driver.run_soon()  # nothing to serve yet
        for i in range(BATCH + 10):
            push.send(b"%d" % i)
        reactor.dispatch()
        assert sum(r.done() for r in results) == BATCH
        assert driver.soon == [reactor._kicked]  # the rest comes after the loop had a turn
        driver.run_soon()
        assert all(r.done() for r in results)


def test_rule4_multipart_messages_are_never_interleaved(sockets, driver):
    push, pull, _ = sockets
    reactor = Reactor(pull, driver)
    results = []
    for _ in range(3):
        result = Result()
        reactor.wait_recv(Waiter(result, _ops.recv_multipart, (NOBLOCK, True, False)))
        results.append(result)
    for i in range(3):
        push.send_multipart([b"%d" % i, b"a", b"b"])
    reactor.dispatch()
    assert [r.value for r in results] == [[b"%d" % i, b"a", b"b"] for i in range(3)]


class TestRule5Timeouts:
    def test_rcvtimeo_fails_the_waiter_with_again_and_consumes_nothing(self, sockets, driver):
        push, pull, _ = sockets
        pull.rcvtimeo = 100
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        assert waiter.timer is not None and waiter.timer.when == pytest.approx(0.1)
        driver.advance(0.1)
        assert isinstance(result.error, zmq.Again)
        assert not reactor.recvq
        push.send(b"later")
        assert pull.recv() == b"later"

    def test_timeouts_are_cached_until_invalidated(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        reactor.wait_recv(recv_waiter()[0])
        pull.rcvtimeo = 50
        waiter = recv_waiter()[0]
        reactor.wait_recv(waiter)
        assert waiter.timer is None  # still the cached "forever"
        reactor.invalidate_timeouts()
        waiter = recv_waiter()[0]
        reactor.wait_recv(waiter)
        assert waiter.timer is not None

    def test_poll_timeout_completes_with_zero(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        result = Result()
        reactor.wait_poll(Waiter(result, None, mask=zmq.POLLIN), 0.25)
        driver.advance(0.25)
        assert result.value == 0
        assert not reactor.pollq

    def test_served_waiter_cancels_its_timer(self, sockets, driver):
        push, pull, _ = sockets
        pull.sndtimeo = pull.rcvtimeo = 1000
        reactor = Reactor(pull, driver)
        waiter, _ = recv_waiter()
        reactor.wait_recv(waiter)
        push.send(b"x")
        reactor.dispatch()
        assert [t.callback for t in driver.live_timers()] == [rechecker_for(driver)._tick]


class TestRule6Close:
    def test_close_cancels_every_waiter_and_unwatches_the_fd(self, sockets, driver):
        push, pull, _ = sockets
        pull.rcvtimeo = 1000
        reactor = Reactor(pull, driver)
        recv_result, poll_result = Result(), Result()
        reactor.wait_recv(Waiter(recv_result, _ops.recv, (NOBLOCK, True, False)))
        reactor.wait_poll(Waiter(poll_result, None, mask=zmq.POLLIN), 5)
        reactor.close()
        assert recv_result.cancelled and poll_result.cancelled
        assert driver.watched == {}
        assert driver.live_timers() == []
        push.send(b"x")
        reactor.dispatch()  # a closed reactor serves no one
        assert pull.recv() == b"x"

    def test_close_with_an_error_fails_waiters_with_it(self, sockets, driver):
        _, pull, _ = sockets
        reactor = Reactor(pull, driver)
        waiter, result = recv_waiter()
        reactor.wait_recv(waiter)
        error = zmq.ZMQError(zmq.ENOTSOCK)
        reactor.close(error)
        assert result.error is error
        with pytest.raises(zmq.ZMQError):
            reactor.wait_recv(recv_waiter()[0])

    @pytest.mark.parametrize("waiting", ["recv", "poll", "recv+poll"])
    def test_context_terminated_under_waiters_fails_them_with_eterm(self, driver, waiting):
        # Receivers alone: the dispatch's receive finds ETERM. With a poll waiting, its
        # EVENTS read (Reactor.events, through zmq_poll) must.
        ctx: zmq.Context[Any] = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.linger = 0
        reactor = Reactor(pull, driver)
        results = []
        if "recv" in waiting:
            waiter, result = recv_waiter()
            reactor.wait_recv(waiter)
            results.append(result)
        if "poll" in waiting:
            result = Result()
            reactor.wait_poll(Waiter(result, None, mask=zmq.POLLIN), None)
            results.append(result)
        terminator = threading.Thread(target=ctx.term)
        terminator.start()
        for _ in range(500):  # term() signals the socket from its thread
            if driver.fd_readable(reactor.fd):
                break
            terminator.join(0.01)
        driver.fire_fd(reactor.fd)
        for result in results:
            assert isinstance(result.error, zmq.ZMQError) and result.error.errno == zmq.ETERM
        assert driver.watched == {}
        pull.close()
        terminator.join(5)
        assert not terminator.is_alive()


def test_rule7_rebind_releases_the_old_loops_waiters(sockets, driver):
    _, pull, _ = sockets
    reactor = Reactor(pull, driver)
    waiter, result = recv_waiter()
    reactor.wait_recv(waiter)
    other = FakeDriver()
    reactor.rebind(other)
    assert result.cancelled
    assert driver.watched == {} and driver.live_timers() == []
    reactor.wait_recv(recv_waiter()[0])
    assert (reactor.fd, False) in other.watched


def counting_send(tries: list[bytes]) -> Callable[[zmq.Socket[Any], bytes], None]:
    """A send operation that records each attempt in ``tries``."""

    def send(sock: zmq.Socket[Any], data: bytes) -> None:
        tries.append(data)
        sock.send(data, zmq.NOBLOCK)

    return send


def test_a_waiting_send_that_can_only_fail_is_tried_once_per_dispatch(request, driver):
    """EFSM never shows as POLLOUT: the reactor tries the head sender once per dispatch."""
    ctx: zmq.Context[Any] = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(linger=0))
    url = f"inproc://reactor-{next(_names)}"
    rep = ctx.socket(zmq.REP)
    rep.bind(url)
    req = ctx.socket(zmq.REQ)
    req.connect(url)
    req.send(b"ask")  # now the REQ owes a receive: a send can only fail with EFSM
    reactor = Reactor(req, driver)
    tries: list[bytes] = []
    send = counting_send(tries)
    result = Result()
    reactor.wait_send(Waiter(result, send, (b"again",)))
    assert not zmq.Socket.get(req, zmq.EVENTS) & zmq.POLLOUT
    reactor.dispatch()
    assert tries == [b"again"]
    assert isinstance(result.error, zmq.ZMQError) and result.error.errno == zmq.EFSM


def test_a_waiting_send_that_cannot_go_yet_is_not_retried_in_a_loop(sockets, driver):
    *_, ctx = sockets
    lonely = ctx.socket(zmq.PUSH)  # no peer: every send raises Again
    lonely.bind(f"inproc://reactor-{next(_names)}")
    reactor = Reactor(lonely, driver)
    tries: list[bytes] = []
    send = counting_send(tries)
    result = Result()
    reactor.wait_send(Waiter(result, send, (b"x",)))
    reactor.dispatch()
    reactor.dispatch()
    assert tries == [b"x", b"x"]  # once per dispatch, no more
    assert not result.done() and list(reactor.sendq)


def test_rule8_abandon_after_fork_touches_no_loop_or_fd(sockets, driver):
    _, pull, _ = sockets
    reactor = Reactor(pull, driver)
    waiter, result = recv_waiter()
    reactor.wait_recv(waiter)
    watched = dict(driver.watched)
    reactor.abandon()  # what a forked child does with each reactor of its parent
    assert driver.watched == watched  # the parent's registration is left alone
    assert reactor.closed and reactor.driver is None and not reactor.recvq
    assert not result.done()  # its waiter belongs to the parent's loop
    reactor.close()  # and a later close does nothing either
    assert driver.watched == watched
