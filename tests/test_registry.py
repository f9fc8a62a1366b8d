from pathlib import Path

import pytest
import torch

from mlrn_core import MLRN, registry
from mlrn_core.registry import ModelError
from tests.helpers import tiny_model


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))


def test_model_file_round_trip_rebuilds_the_network(tmp_path):
    m = tiny_model(3, kernels=(3, 5), gff=False)
    path = registry.save_model(tmp_path / "m.pt", m, info={"provenance": {"steps": 5}})
    loaded = registry.load_model(path, 3)
    assert loaded.model.hparams == m.hparams
    assert loaded.info["provenance"]["steps"] == 5
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    # the file is readable with weights_only=True, i.e. no pickled code in it
    torch.load(path, weights_only=True)


def test_half_precision_files_load_as_float32(tmp_path):
    m = tiny_model(2)
    path = registry.save_model(tmp_path / "h.pt", m, half=True)
    loaded = registry.load_model(path)
    assert next(loaded.model.parameters()).dtype == torch.float32


def test_wrong_scale_is_refused(tmp_path):
    path = registry.save_model(tmp_path / "m.pt", tiny_model(2))
    with pytest.raises(ModelError, match="upscales x2, but x4 was asked for"):
        registry.load_model(path, 4)


def test_foreign_files_get_clear_errors(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(MLRN(scale=2, features=8, blocks=1).state_dict(), plain)
    with pytest.raises(ModelError, match="plain.pt.*not an MLRN Studio model file"):
        registry.load_model(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match="junk.pt.*not a PyTorch model file at all"):
        registry.load_model(junk)
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelError, match="no model named or at"):
        registry.load_model(str(missing))


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": registry.FORMAT, "x": Evil()}, path)
    with pytest.raises(ModelError, match="evil.pt") as info:
        registry.load_model(path)
    # the whole reason, not torch's text cut off before it
    message = str(info.value)
    assert "not plain weights" in message and "print" in message and "sources you trust" in message


def test_strict_keys_name_missing_and_unexpected(tmp_path):
    m = tiny_model(2)
    payload = registry.make_model_payload(m.hparams, m.state_dict(), {})
    del payload["state_dict"]["tail.weight"]
    payload["state_dict"]["extra.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(ModelError, match=r"missing keys \['tail.weight'\].*unexpected keys \['extra.bias'\]"):
        registry.load_model(path)


def test_no_builtin_weights_message(monkeypatch, tmp_path):
    from mlrn_core import paths

    monkeypatch.setattr(paths, "builtin_models_dir", lambda: tmp_path / "empty")
    with pytest.raises(ModelError, match="no built-in weights for x3: mlrn-x3.pt is missing"):
        registry.load_model(None, 3)


def test_user_models_register_list_rename_export_import_delete(tmp_path):
    src = registry.save_model(tmp_path / "m.pt", tiny_model(2), info={"metrics": {"val_psnr": 30.0}})
    entry = registry.register_user_model(src, "My Portraits", "# My Portraits\n")
    assert entry.path.exists() and entry.card_path.read_text().startswith("# My Portraits")
    names = [e.name for e in registry.list_models() if e.kind == "user"]
    assert names == ["My Portraits"]
    assert registry.load_model("My Portraits", 2).name == "My Portraits"
    with pytest.raises(ModelError, match="already exists"):
        registry.register_user_model(src, "My Portraits", "")
    registry.rename_user_model("My Portraits", "Portraits v2")
    assert [e.name for e in registry.list_models() if e.kind == "user"] == ["Portraits v2"]
    exported = registry.export_user_model("Portraits v2", tmp_path / "out.pt")
    registry.delete_user_model("Portraits v2")
    assert not [e for e in registry.list_models() if e.kind == "user"]
    back = registry.import_user_model(exported, "Imported")
    assert back.scale == 2 and registry.find_model("Imported") is not None
    with pytest.raises(ModelError, match="not a valid model name"):
        registry.register_user_model(src, "../escape", "")
    with pytest.raises(ModelError, match="reserved"):
        registry.register_user_model(src, "mlrn-x2", "")


def test_a_model_found_by_name_or_path_reads_only_its_own_file(tmp_path, monkeypatch, install_builtin):
    """Loading one model read every model file to find it (~0.1 s of each mlrn upscale on 2 cores)."""
    for name, scale in (("mlrn-x2", 2), ("mlrn-x2-photo", 2), ("mlrn-x3", 3), ("mlrn-x4", 4)):
        install_builtin(name, scale=scale)
    registry.register_user_model(registry.save_model(tmp_path / "m.pt", tiny_model(2)), "Portraits", "")
    broken = registry.paths.builtin_models_dir() / "mlrn-x4-photo.pt"
    broken.write_bytes(b"not a model")
    expected = {e.name: e for e in registry.list_models()}
    reads: list[str] = []
    real = registry.read_model_file
    monkeypatch.setattr(registry, "read_model_file", lambda p: reads.append(Path(p).name) or real(p))

    assert registry.load_model("mlrn-x2-photo", 2).name == "mlrn-x2-photo"
    assert reads == ["mlrn-x2-photo.pt"] * 2  # found, then loaded
    reads.clear()
    assert registry.load_model(expected["mlrn-x3"].path, 3).name == "mlrn-x3"
    assert reads == ["mlrn-x3.pt"]
    reads.clear()
    assert registry.load_model("Portraits", 2).name == "Portraits"
    assert reads == ["Portraits.pt"] * 2
    for name in [*expected, "mlrn-x4-photo", "nothing"]:  # the same answers as a look through list_models
        assert registry.find_model(name) == expected.get(name)
