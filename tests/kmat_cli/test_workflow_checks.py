"""The label-free check of ``kmat train``: ``checks.json`` in the run folder, one stderr line at start with
``--verbose``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kmat_runner import cli
from short_runs import SHORT_FLAGS
from toyworld import train_argv

from kmat_cli import assemble, config, workflow
from kmat_cli.app import main
from kmat_cli.runs import Run

pytestmark = pytest.mark.usefixtures("trust_code")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1).mean())


def _prototypes(parts, template: str) -> dict[str, torch.Tensor]:
    """p_m (K, D) from the backbone's own encode_text, written out here."""
    out = {}
    with torch.no_grad():
        for m in ("hi", "lo"):
            rows = []
            for c in parts.task.class_names:
                texts = [
                    template.format(modality=parts.task.modalities[m], description=d)
                    for d in parts.descriptions[m][c]
                ]
                rows.append(
                    F.normalize(F.normalize(parts.backbone.encode_text(texts), dim=-1).mean(0), dim=-1)
                )
            out[m] = torch.stack(rows)
    return out


def test_train_prints_one_check_line_and_stores_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    argv = [*train_argv(tmp_path, epochs=2, shots=2), "--transport", "none", "--verbose"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    err = captured.err
    lines = [line for line in err.splitlines() if "label-free check" in line]
    assert len(lines) == 1, err
    run = Path(captured.out.strip())  # the run folder is all that train prints on stdout
    assert run.parent == out / "train"
    checks = json.loads((run / Run.CHECKS).read_text())
    assert checks["format"] == workflow.CHECKS_FORMAT
    init, trained = checks["init"], checks["trained"]
    assert init["description_template"] == "{modality}: {description}"

    # independent truth: the method rebuilt at the run's seed, prototypes from encode_text
    cfg = config.load_yaml(run / "config.yaml")
    parts = assemble.build_parts(cfg, torch.device("cpu"))
    with torch.no_grad():
        t0 = assemble.build_method(parts, seed=int(cfg["train"]["seed"])).prompts()
    p = _prototypes(parts, init["description_template"])
    assert abs(init["cos_p_hi_lo"] - _cos(p["hi"], p["lo"])) < 1e-6
    assert abs(init["cos_t_hi_lo"] - _cos(t0["hi"], t0["lo"])) < 1e-6
    assert abs(init["cos_t_p"]["lo"] - _cos(t0["lo"], p["lo"])) < 1e-6
    shown = [float(x) for x in re.findall(r"-?\d+\.\d{3}", lines[0])]
    assert shown == [round(init["cos_p_hi_lo"], 3), round(init["cos_t_hi_lo"], 3)]

    _, _, _, method = workflow.load_trained(run)
    with torch.no_grad():
        t = method.prompts()
    assert abs(trained["cos_t_p"]["lo"] - _cos(t["lo"], p["lo"])) < 1e-6
    assert abs(trained["cos_t_hi_lo"] - _cos(t["hi"], t["lo"])) < 1e-6
    assert trained["cos_t_hi_lo"] != init["cos_t_hi_lo"]  # the check after training saw trained prompts


def test_methods_without_prototypes_write_no_check(tmp_path: Path, capsys) -> None:
    argv = [*train_argv(tmp_path, epochs=1, shots=2), "--method", "coop"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "label-free check" not in captured.err
    run = Path(captured.out.strip())
    assert (run / "config.yaml").is_file()  # the run exists, only its check file does not
    assert not (run / Run.CHECKS).exists()


def test_the_label_free_check_is_in_checks_json_and_on_stderr_only_with_verbose(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "runs"
    code, stdout, stderr = cli("train", "--out", out, *SHORT_FLAGS)
    assert code == 0 and "label-free" not in stderr
    assert "init" in json.loads((Path(stdout.strip()) / "checks.json").read_text())
    code, _, stderr = cli("train", "--out", out, "--verbose", *SHORT_FLAGS)
    assert code == 0 and "label-free check at init" in stderr
