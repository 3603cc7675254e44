"""Sections of benches/RESULTS.md, each owned by one script and replaced in place."""
import os
import re

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def update_section(name, body):
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = open(PATH).read() if os.path.exists(PATH) else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block
    with open(PATH, "w") as f:
        f.write(text)
