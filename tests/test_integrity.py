"""Verified exports on the edge box: each damaged-export case is refused with the file named, the data-free
policy switch, and `dfq-sam verify` (real OpenVINO, tiny random SAM ViT-B exports)."""

import json
import shutil

import pytest

from dfq_sam_plugin.integrity import ExportIntegrityError


@pytest.fixture(scope="module")
def exports(tmp_path_factory, shorten):
    """Two float exports of different random two-block models (for swapping files) and one made from real data."""
    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import export_float
    from dfq_sam_plugin.export.openvino import convert_decoder, convert_encoder, save_export

    root = tmp_path_factory.mktemp("exports")
    a = shorten(load_sam("vit_b", random_init=True, img_size=64, seed=0), 2)
    b = shorten(load_sam("vit_b", random_init=True, img_size=64, seed=1), 2)
    real_calib = {"model": a.name, "weights_sha256": a.weights_sha256, "method": "real-mni", "real_data_used": True}
    save_export(root / "real", convert_encoder(a.model.image_encoder, 64),
                convert_decoder(a.model, a.spec.embed_shape, 1), a.spec, real_calib, {"name": "real"})
    return export_float(a, root / "a"), export_float(b, root / "b"), root / "real"


def _copy(src, tmp_path):
    dst = tmp_path / "export"
    shutil.copytree(src, dst)
    return dst


def test_an_intact_export_loads_and_records_its_hashes(exports):
    from dfq_sam_plugin.runtime import OVSamPredictor

    manifest = json.loads((exports[0] / "manifest.json").read_text())
    assert set(manifest["files"]) == {"encoder.xml", "encoder.bin", "decoder.xml", "decoder.bin"}
    assert OVSamPredictor(exports[0]).manifest["files"] == manifest["files"]


@pytest.mark.parametrize("damage,file,match", [
    ("truncate", "encoder.bin", "truncated or replaced"),
    ("edit", "decoder.xml", "sha256 differs"),
    ("swap", "encoder.bin", "sha256 differs"),
    ("unhash", "encoder.xml", "no hash in the manifest"),
])
def test_damaged_exports_are_refused_naming_the_file(exports, tmp_path, damage, file, match):
    from dfq_sam_plugin.runtime import OVSamPredictor

    folder = _copy(exports[0], tmp_path)
    path = folder / file
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "edit":
        text = path.read_text()  # the same size, one element type changed: only the hash tells
        path.write_text(text.replace('element_type="f32"', 'element_type="f16"', 1))
        assert path.read_text() != text
    elif damage == "swap":  # same size, other model: only the hash tells
        shutil.copy(exports[1] / file, path)
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["files"][file]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportIntegrityError, match=match) as err:
        OVSamPredictor(folder)
    assert str(path) in str(err.value)
    if damage == "unhash":
        assert OVSamPredictor(folder, verify=False)  # the opt-out still loads


def test_an_export_without_hashes_is_refused_unless_verify_is_off(exports, tmp_path):
    from dfq_sam_plugin.runtime import OVSamPredictor

    folder = _copy(exports[0], tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportIntegrityError, match="records no file hashes"):
        OVSamPredictor(folder)
    assert OVSamPredictor(folder, verify=False)


def test_require_data_free_refuses_real_data_and_missing_provenance(exports, tmp_path):
    from dfq_sam_plugin.runtime import OVSamPredictor

    assert OVSamPredictor(exports[0], require_data_free=True)
    with pytest.raises(ExportIntegrityError, match="real data was used"):
        OVSamPredictor(exports[2], require_data_free=True)
    assert OVSamPredictor(exports[2])  # without the policy it loads
    folder = _copy(exports[0], tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["calibration"].pop("real_data_used")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportIntegrityError, match="records no calibration provenance"):
        OVSamPredictor(folder, require_data_free=True, verify=False)


def test_cli_verify_exit_status(exports, tmp_path):
    from dfq_sam_plugin.cli import main

    assert main(["verify", str(exports[0]), "--require-data-free"]) == 0
    assert main(["verify", str(exports[2])]) == 0
    assert main(["verify", str(exports[2]), "--require-data-free"]) == 1
    folder = _copy(exports[0], tmp_path)
    (folder / "encoder.bin").write_bytes((folder / "encoder.bin").read_bytes()[:1000])
    assert main(["verify", str(folder)]) == 1
    assert main(["verify", "--ir", str(exports[0])]) == 0  # --ir, as evaluate / benchmark name an export
    # a folder of exports: each is verified, the worst status wins; a missing folder is not "not an export"
    parent = exports[0].parent
    assert main(["verify", "--ir", str(parent)]) == 0
    assert main(["verify", "--ir", str(parent), "--require-data-free"]) == 1
    assert main(["verify", "--ir", str(tmp_path / "absent")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["verify", "--ir", str(tmp_path / "empty")]) == 2


def test_cli_version_and_backend_from_the_recipe(capsys):
    from dfq_sam_plugin import __version__
    from dfq_sam_plugin.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    # the recipe decides the backend; a contradicting --backend is refused before any model is loaded
    assert main(["quantize", "--calib", "nowhere", "--recipe", "brevitas_w8a8", "--backend", "nncf",
                 "--out", "x"]) == 2
    assert "use --backend brevitas" in " ".join(capsys.readouterr().err.split())
    # --set changes are validated with the recipe (an unknown key, a conflict with its other keys), before any model
    assert main(["quantize", "--calib", "nowhere", "--recipe", "openvino_int8_cpu", "--set", "colour=red",
                 "--out", "x"]) == 2
    assert "unknown key(s) ['colour']" in " ".join(capsys.readouterr().err.split())
    assert main(["quantize", "--calib", "nowhere", "--recipe", "openvino_int8_cpu", "--set",
                 "target_device=CPU_SPR,nncf_backend=torch", "--out", "x"]) == 2
    assert "OpenVINO backend only" in " ".join(capsys.readouterr().err.split())
    # library errors are told in CLI words: the flag to pass, not the keyword argument
    assert main(["evaluate", "--model", "vit_b", "--sets", "nuclei"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--checkpoint" in err and "--random-init" in err and "checkpoint=" not in err
