"""The one thing pyproject.toml cannot say: ``sr_iqa_basicsr_compat.pth`` installed beside the packages, so that
``import basicsr`` works in this environment without importing sr_iqa first (basicsr 1.4.2 imports a module
current torchvision removed; sr_iqa/basicsr_compat.py serves it). Editable installs get the file from the
Makefile, which copies it after ``pip install -e``."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK = "sr_iqa_basicsr_compat.pth"


class BuildWithStartupHook(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(HOOK, str(Path(self.build_lib) / HOOK))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / HOOK)]


setup(cmdclass={"build_py": BuildWithStartupHook})
