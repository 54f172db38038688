"""`frankateach.signals.SignalFlag`: a stop signal is taken without any lock, at any moment."""

from __future__ import annotations

import signal
import threading
import time

from frankateach.signals import SignalFlag


def test_the_handler_takes_no_lock_even_while_the_event_lock_is_held() -> None:
    # A signal handler runs in the main thread between bytecodes, possibly while that thread holds
    # the stop event's internal lock (inside Event.set / Event.wait). Calling Event.set there hangs.
    stop = threading.Event()
    flag = SignalFlag()
    with stop._cond:  # what the interrupted main thread may be holding
        caller = threading.Thread(target=flag.handler, args=(signal.SIGINT, None), daemon=True)
        caller.start()
        caller.join(1.0)
        assert not caller.is_alive(), "the handler blocked on the event's lock"
    assert flag.requested and flag.signum == signal.SIGINT
    assert not stop.is_set()  # only the waiting loop sets it


def test_an_event_setting_handler_would_hang_there() -> None:
    # The same situation with the naive handler (`stop.set()`): it blocks, which is the bug above.
    stop = threading.Event()
    with stop._cond:
        caller = threading.Thread(target=stop.set, daemon=True)
        caller.start()
        caller.join(0.3)
        assert caller.is_alive()
    caller.join(1.0)


def test_wait_turns_a_recorded_signal_into_stop_and_keeps_the_first_signal() -> None:
    stop, flag = threading.Event(), SignalFlag()
    assert flag.wait(stop, 0.05) is False and not stop.is_set()
    flag.handler(signal.SIGTERM, None)
    flag.handler(signal.SIGINT, None)
    t0 = time.monotonic()
    assert flag.wait(stop, 5.0) is True and stop.is_set()
    assert time.monotonic() - t0 < 0.5
    assert flag.signum == signal.SIGTERM


def test_wait_returns_when_another_thread_sets_stop() -> None:
    stop, flag = threading.Event(), SignalFlag()
    threading.Timer(0.05, stop.set).start()
    t0 = time.monotonic()
    assert flag.wait(stop, None, poll_s=10.0) is True
    assert time.monotonic() - t0 < 2.0


def test_install_refuses_outside_the_main_thread() -> None:
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(SignalFlag().install()))
    t.start()
    t.join(2.0)
    assert result == [False]


def test_raise_if_requested_turns_the_recorded_signal_into_pythons_own_exception() -> None:
    import pytest

    flag = SignalFlag()
    flag.raise_if_requested()  # nothing recorded: nothing raised
    flag.handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        flag.raise_if_requested()
    term = SignalFlag()
    term.handler(signal.SIGTERM, None)
    with pytest.raises(SystemExit) as exc:
        term.raise_if_requested()
    assert exc.value.code == 128 + signal.SIGTERM
