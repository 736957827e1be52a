"""Build hook: ship the reference submission inside the wheel as ``harness/_template``.

`pgolf rehearse` runs ``submission_template/train_gpt.py``. A checkout or an
editable install finds it next to the package; a wheel (``pip install .``) has
no checkout, so the build copies the folder into the package. Everything else
about the build lives in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATE_SRC = Path(__file__).resolve().parent / "submission_template"


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode or not TEMPLATE_SRC.is_dir():
            return  # editable installs read the checkout's submission_template directly
        dest = Path(self.build_lib) / "harness" / "_template"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(TEMPLATE_SRC, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithTemplate})
