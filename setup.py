"""Build hook: the wheel carries deploy/template.yaml and deploy/requirements.txt as package data
of `salesstream` (under salesstream/_deploy/), so a non-editable install finds the template. The
repository keeps the single copy in deploy/; an editable install reads it there."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("template.yaml", "requirements.txt")


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # salesstream.deploy.template falls back to the checkout's deploy/
            return
        target = Path(self.build_lib, "salesstream", "_deploy")
        self.mkpath(str(target))
        for name in SHIPPED:
            self.copy_file(str(Path("deploy", name)), str(target / name))


setup(cmdclass={"build_py": BuildWithTemplate})
