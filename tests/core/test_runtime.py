"""Process-wide tuning, checked in a child interpreter so the test process's own
collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys

from core.runtime import GC_THRESHOLDS


def test_settle_heap_freezes_start_up_and_raises_the_thresholds() -> None:
    code = (
        "import gc, json\n"
        "from core.runtime import settle_heap\n"
        "survivor = [object() for _ in range(1000)]\n"
        "before = gc.get_freeze_count()\n"
        "settle_heap()\n"
        "print(json.dumps({'before': before, 'after': gc.get_freeze_count(),\n"
        "                  'thresholds': gc.get_threshold()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    result = json.loads(done.stdout)
    assert result["before"] == 0
    assert result["after"] > 1000  # the survivors, and everything start-up imported
    assert tuple(result["thresholds"]) == GC_THRESHOLDS
