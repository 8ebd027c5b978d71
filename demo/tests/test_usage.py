"""What the day cost the machine: the sampler against a real process that burns a known amount of CPU."""

from __future__ import annotations

import subprocess
import sys

from goldenkey.demo.usage import Usage

BURN = """
import sys, time
start = time.process_time()
while time.process_time() - start < 1.0:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_a_process_is_charged_the_cpu_it_burnt_and_its_memory() -> None:
    burner = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        usage = Usage({"burner": burner.pid, "gone": 2**22 + 1})
        usage.start()
        assert burner.stdout is not None
        assert burner.stdout.readline().strip() == "burnt"
        figures = usage.figures()
    finally:
        burner.communicate("")
    assert set(figures) == {"burner"}, "a process that is not there is left out, not guessed"
    burnt = figures["burner"]
    assert 0.5 <= burnt["cpu_s"] <= 5.0
    assert burnt["peak_rss_mib"] > 1
    assert burnt["cpu_percent"] > 0
