"""Where `fraudpipe serve` finds its model: a bundle directory, or a version in the model registry.

The registry is the DVC ecosystem's own: dvc.yaml declares the train stage's bundle as the
artifact ``fraud-model`` (``artifacts:``, ``type: model``), and GTO writes its versions and stages
as git tags (``fraud-model@v1.2.0``, ``fraud-model#prod#3``). A reference is written as GTO's own
shortcuts: ``fraud-model#prod`` (the version a stage holds), ``fraud-model@v1.2.0`` (a version),
``fraud-model@latest`` (the greatest registered one). GTO reads the tags and answers the version
and its commit; DVC fetches the bundle of that commit (from the repository's cache, else its
remote) into a local cache directory named by the commit, and the bundle's sha256 sums are
verified before the service trusts it. A cached copy that verifies is used again without asking
DVC, so a restart needs neither the remote nor the network.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import dvc.api
from dvc.exceptions import DvcException
from dvc_data.index import DataIndexError
from gto.base import Artifact
from gto.constants import VersionSort, parse_shortcut
from gto.exceptions import GTOException
from gto.registry import GitRegistry
from scmrepo.exceptions import SCMError

from fraudpipe.errors import BundleError, ConfigError
from fraudpipe.io import atomic_dir
from fraudpipe.model import load_bundle
from fraudpipe.serve.config import Release

#: Where fetched bundles are kept, one directory per artifact and commit (git-ignored, like the journal).
MODEL_CACHE = Path("serving/models")


@dataclass(frozen=True)
class Reference:
    """A registry reference as given: an artifact and a stage, a version, or neither (the latest)."""

    text: str
    artifact: str
    stage: str | None = None
    version: str | None = None


def parse_reference(value: str) -> Reference | None:
    """The reference ``value`` spells in GTO's shortcut syntax; None when it is not one (a path)."""
    shortcut = parse_shortcut(value)
    if not shortcut.shortcut:
        return None
    return Reference(value, shortcut.name, shortcut.stage, shortcut.version)


def resolve(reference: Reference, registry: str) -> Release:
    """The version and commit ``reference`` names in the git tags of ``registry`` (a path or git URL)."""
    ref = reference.text
    try:
        with GitRegistry.from_url(registry) as reg:
            allowed = reg.get_stages(allowed=True)
            artifacts = reg.get_state().get_artifacts()
    except (GTOException, SCMError) as exc:
        raise ConfigError(f"--registry {registry}: not a git repository GTO can read ({_one_line(exc)})") from None
    artifact = artifacts.get(reference.artifact)
    if artifact is None or not artifact.get_versions():
        known = sorted(name for name, a in artifacts.items() if a.get_versions())
        raise ConfigError(
            f"--model {ref}: no registered artifact {reference.artifact!r} in {registry} "
            f"(registered: {', '.join(known) or 'none'}); register a version: gto register {reference.artifact}"
        )
    if reference.stage is not None:
        version, commit = _in_stage(artifact, reference.stage, allowed, ref)
    else:
        version, commit = _version(artifact, reference.version, ref)
    return Release(reference=ref, artifact=reference.artifact, version=version, stage=reference.stage, commit=commit)


def _in_stage(artifact: Artifact, stage: str, allowed: list[str], ref: str) -> tuple[str, str]:
    if allowed and stage not in allowed:
        raise ConfigError(f"--model {ref}: unknown stage {stage!r}; the registry's stages (.gto): {', '.join(allowed)}")
    # the latest assignment wins (a roll-back is assigning the older version again), as `gto show` and
    # `dvc artifacts get --stage` read the tags
    held = artifact.get_vstages(sort=VersionSort.Timestamp).get(stage)
    if not held:
        raise ConfigError(
            f"--model {ref}: no version of {artifact.artifact} is in stage {stage!r}; assign one: "
            f"gto assign {artifact.artifact} --version vX.Y.Z --stage {stage}"
        )
    return held[0].version, held[0].commit_hexsha


def _version(artifact: Artifact, wanted: str | None, ref: str) -> tuple[str, str]:
    versions = artifact.get_versions()  # registered and not deregistered, the greatest first
    if wanted is None:
        return versions[0].version, versions[0].commit_hexsha
    for found in versions:
        if found.version == wanted:
            return found.version, found.commit_hexsha
    raise ConfigError(
        f"--model {ref}: no version {wanted} of {artifact.artifact} "
        f"(registered: {', '.join(v.version for v in versions)})"
    )


def fetch(release: Release, registry: str, cache: Path = MODEL_CACHE) -> Path:
    """The bundle of ``release``, verified, in ``cache``: fetched with DVC unless a verified copy is there."""
    target = cache / release.artifact.replace(":", "/") / release.commit
    if target.is_dir():
        try:
            load_bundle(target, nthread=1)
            return target
        except BundleError:
            shutil.rmtree(target)  # damaged or half-copied: fetch it again
    where = f"{release.label} (commit {release.commit[:12]})"
    try:
        shown = dvc.api.artifacts_show(release.artifact, version=release.version, repo=registry)
        if shown["rev"] != release.commit:
            raise BundleError(f"DVC finds it at commit {shown['rev'][:12]}: the registry's tags changed meanwhile")
        with atomic_dir(target) as tmp:
            fs = dvc.api.DVCFileSystem(registry, rev=release.commit)
            try:
                fs.get(f"{shown['path'].rstrip('/')}/", f"{tmp}/", recursive=True)
            finally:
                fs.close()
            load_bundle(tmp, nthread=1)  # the sha256 sums, before it is kept
    except (DvcException, DataIndexError, OSError) as exc:  # not in the cache, the remote unreachable or empty
        raise BundleError(
            f"{where}: DVC could not fetch it from {registry}: {_one_line(exc)}; the bundle must be in that "
            "repository's DVC cache or its remote (`dvc push` after `dvc repro`)"
        ) from None
    except BundleError as exc:
        raise BundleError(f"{where}: {exc}") from None
    return target


def model_from(value: str, registry: str, cache: Path = MODEL_CACHE) -> tuple[Path, Release | None]:
    """--model as a bundle directory, or a reference resolved and fetched (with the version it names)."""
    reference = parse_reference(value)
    if reference is None:
        return Path(value), None
    release = resolve(reference, registry)
    return fetch(release, registry, cache), release


def _one_line(exc: BaseException) -> str:
    """An exception and its causes as one line (DVC's own message is often only "failed to ...")."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        text = " ".join(str(seen).split())
        if text and text not in parts:
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return ": ".join(parts) or type(exc).__name__
