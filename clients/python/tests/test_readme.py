"""The README's "From Python" examples, run as written against the demo
node, from the directory that holds its ohm-data/ (as a user would)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def examples() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_examples_run(initialized):
    node = initialized
    blocks = examples()
    assert len(blocks) == 2, "the README's From Python section has its two examples"
    env = dict(os.environ, OHM_ADDR=node.addr)
    outputs = []
    for block in blocks:
        out = subprocess.run([sys.executable, "-c", block], cwd=node.data.parent, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{block}\n{out.stdout}\n{out.stderr}"
        outputs.append(out.stdout)
    # The vote was accepted, and the query found it.
    assert outputs[0].startswith("0\n") and "[[3, 'NY']]" in outputs[0], outputs[0]
    assert "[('state', 'VARCHAR(2)'), ('n', 'BIGINT')]" in outputs[1], outputs[1]
    assert "('NY', " in outputs[1], outputs[1]
