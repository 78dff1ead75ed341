"""Print the command lines of the first fenced block under README's `## Quick start`."""

import re
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text(encoding="utf-8")
section = text.split("## Quick start", 1)[1]
block = re.search(r"```[a-z]*\n(.*?)```", section, re.S).group(1)
for line in block.splitlines():
    if line.strip() and not line.lstrip().startswith("#"):
        print(line.strip())
