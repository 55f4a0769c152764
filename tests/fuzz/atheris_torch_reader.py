"""Coverage-guided fuzzing of transfer/torch_reader.py with atheris (libFuzzer for Python); not a test.

The seeded mutation fuzzers (test_fuzz_*.py) run in CI; this one runs for as long as you let it and
steers by coverage, which is how it found BYTEARRAY8's 16 GiB allocation from 60 bytes. Any exception
other than torch_reader.CheckpointError is a crash; libFuzzer's -rss_limit_mb catches memory blowups::

    .venv/bin/pip install -e '.[fuzz]'
    mkdir -p /tmp/pth_corpus && cp tests/data/torch/{tensors,convbn}_{legacy,zip}.pth /tmp/pth_corpus/
    .venv/bin/python tests/fuzz/atheris_torch_reader.py /tmp/pth_corpus -max_total_time=600 -rss_limit_mb=3000 \\
        -timeout=20 -artifact_prefix=/tmp/pth_
    .venv/bin/python tests/fuzz/atheris_torch_reader.py /tmp/pth_crash-...   # replays one found input
"""

import contextlib
import io
import sys

import atheris

with atheris.instrument_imports():
    from transfer import torch_reader


def one_input(data: bytes) -> None:
    with contextlib.suppress(torch_reader.CheckpointError):
        torch_reader.load_checkpoint(io.BytesIO(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
