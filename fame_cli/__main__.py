"""``python -m fame_cli ...``: the same CLI, e.g. under ``torchrun -m fame_cli pretrain ...``."""

from .main import app

app(prog_name="fame")
