"""The end of a benchmark: its record with the machine's load average before and after (this machine is shared, so a
figure is read with its load), written atomically as JSON and printed."""
from __future__ import annotations

import json
import os
from pathlib import Path

from groupvit.atomic import atomic_write_json


def write_record(result: dict, out: Path, load_before: tuple[float, float, float]) -> dict:
    result = {**result, "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    atomic_write_json(result, out)
    print(json.dumps(result, indent=2))
    return result
