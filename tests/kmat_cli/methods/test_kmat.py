"""K-MaT's ``description_template``: prototypes are the backbone's own encoding of the templated descriptions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from toyworld import ToyTask, setup, train_argv

from kmat_cli import registry
from kmat_cli.app import main
from kmat_cli.errors import UsageError


def _truth(template: str) -> torch.Tensor:
    """(2, K, D): normalize(mean_j normalize(encode_text([template.format(...)]))) written out here."""
    s = setup()
    out = []
    with torch.no_grad():
        for m in ("hi", "lo"):
            rows = []
            for c in ToyTask.class_names:
                texts = [
                    template.format(modality=s.modalities[m], description=d) for d in s.descriptions[m][c]
                ]
                rows.append(F.normalize(F.normalize(s.backbone.encode_text(texts), dim=-1).mean(0), dim=-1))
            out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize(
    "template, options",
    [
        ("{modality}: {description}", {}),  # the default
        ("{description}", {"description_template": "{description}"}),
        ("{description} ({modality} image)", {"description_template": "{description} ({modality} image)"}),
    ],
)
def test_prototypes_are_the_encoded_templated_descriptions(template: str, options: dict) -> None:
    method = registry.get("methods", "kmat")(setup(), transport=False, **options)
    torch.testing.assert_close(method.prototypes, _truth(template), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "template, says",
    [
        ("{modality}", "needs the placeholder {description}"),
        ("{modality} {desc}", "unknown placeholder(s) {desc}"),
        ("{description} {", "is not a valid template"),
    ],
)
def test_bad_template_is_a_usage_error_naming_the_key(template: str, says: str) -> None:
    with pytest.raises(UsageError, match=r"method\.description_template") as err:
        registry.get("methods", "kmat")(setup(), description_template=template)
    assert says in str(err.value)


def test_cli_bad_template_exits_2_with_one_line_and_no_run_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    argv = [
        *train_argv(tmp_path, epochs=1, shots=2),
        "--set",
        "method.description_template={class}: {description}",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "method.description_template" in err[0] and "{class}" in err[0], err
    assert not (out / "train").exists() or not list((out / "train").iterdir())


def test_train_help_lists_the_kmat_keys() -> None:
    from typer.testing import CliRunner

    from kmat_cli.app import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for key in ("method.description_template", "transport.center", "transport.normalize", "transport.alpha"):
        assert key in result.stdout, key
