"""The `voxelwise` command: help, version, and errors as one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voxelwise import __version__
from voxelwise.cli.main import main


def test_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2  # no command: help and a non-zero exit
    assert "phantom" in capsys.readouterr().out


def test_console_script_starts_without_heavy_imports() -> None:
    code = ("import sys; from voxelwise.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'SimpleITK', 'matplotlib', 'pydicom') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_bad_input_is_one_clear_line(tmp_path, capsys) -> None:
    missing = tmp_path / "nowhere.nii.gz"
    (tmp_path / "in").mkdir()
    status = main(["dicom", "convert", str(tmp_path / "in"), "--out", str(missing)])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("voxelwise: error:") and str(tmp_path / "in") in error
    assert not missing.exists()
