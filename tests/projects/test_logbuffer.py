"""The per-run log buffer: bounded, numbered, with blocking reads for followers."""

from __future__ import annotations

import threading
import time

from mlgrid_services.projects.logbuffer import LogBuffer


def test_buffer_is_bounded_and_tells_slow_readers_what_they_missed() -> None:
    log = LogBuffer(budget=100)
    for i in range(50):
        log.append("stdout", f"line {i:03d}\n".encode())  # 9 bytes each
    entries, end, complete = log.read(0)
    assert end == 50 and not complete
    assert entries[0].stream == "system" and b"dropped" in entries[0].data
    kept = b"".join(e.data for e in entries[1:])
    assert len(kept) <= 100
    assert kept.endswith(b"line 049\n")
    assert kept.startswith(b"line 0")  # whole chunks only


def test_follower_wakes_up_on_new_output_and_sees_the_end() -> None:
    log = LogBuffer()
    log.append("stdout", b"a")
    _, position, _ = log.read(0)

    def later() -> None:
        time.sleep(0.2)
        log.append("stderr", b"b")
        log.close()

    threading.Thread(target=later).start()
    started = time.monotonic()
    entries, position, complete = log.read(position, wait=5.0)
    assert time.monotonic() - started < 2.0  # woken by the append, not by the timeout
    if not complete:
        more, position, complete = log.read(position, wait=5.0)
        entries += more
    assert [(e.stream, e.data) for e in entries] == [("stderr", b"b")]
    assert complete and position == 2
