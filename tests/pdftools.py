"""Small helpers that run poppler / NSS command-line tools on PDF bytes (independent checks)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest


def needs(*tools: str) -> pytest.MarkDecorator:
    """Skip a test when one of the command-line tools is not installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {', '.join(missing)} (poppler-utils / libnss3-tools)"
    )


def _run(args: list[str], pdf: bytes) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "letter.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            [*args, str(path)], capture_output=True, text=True, timeout=60, check=False
        )


def pdftotext(pdf: bytes, page: int | None = None) -> str:
    """Text of the PDF (or one page) as pdftotext reads it."""
    args = ["pdftotext", "-enc", "UTF-8"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "letter.pdf"
        src.write_bytes(pdf)
        out = subprocess.run(
            [*args, str(src), "-"], capture_output=True, text=True, timeout=60, check=True
        )
    return out.stdout


def flat(text: str) -> str:
    """Whitespace collapsed and NFKC-normalised (Arabic presentation forms -> letters)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def pdfinfo(pdf: bytes) -> dict[str, str]:
    """pdfinfo's "Key: value" lines as a dict (Title, Author, Pages, …)."""
    out = _run(["pdfinfo"], pdf).stdout
    info: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def page_count(pdf: bytes) -> int:
    """Number of pages according to pdfinfo."""
    return int(pdfinfo(pdf)["Pages"])


@dataclass(frozen=True)
class FontRow:
    """One line of pdffonts output."""

    name: str
    type: str
    embedded: bool


def pdffonts(pdf: bytes) -> list[FontRow]:
    """Fonts used in the PDF, as pdffonts lists them."""
    out = _run(["pdffonts"], pdf)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows: list[FontRow] = []
    # header, dashes, then rows; columns: name type(may have spaces) encoding emb sub uni id gen
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 7:
            continue
        emb = parts[-5]
        rows.append(FontRow(name=parts[0], type=" ".join(parts[1:-6]), embedded=emb == "yes"))
    return rows


def pdfsig(pdf: bytes, nss_dir: Path | None = None) -> str:
    """pdfsig's report (stdout + stderr).

    Not ``-no-ocsp``: poppler 22.12 then reports "Unknown issue with Certificate"
    even for a trusted chain.  gpshare certificates name no OCSP responder, so
    nothing is fetched anyway.
    """
    args = ["pdfsig"]
    if nss_dir is not None:
        args += ["-nssdir", f"sql:{nss_dir}"]
    out = _run(args, pdf)
    return out.stdout + out.stderr


def nss_db_trusting(directory: Path, ca_pem: bytes) -> Path:
    """A fresh NSS database in ``directory`` that trusts ``ca_pem`` for signing.

    The trust flags are "C,C,": poppler validates the signer for S/MIME (email
    signer) use, so "C,," (trusted for TLS only) leaves the certificate untrusted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = directory / "ca.pem"
    ca.write_bytes(ca_pem)
    subprocess.run(
        ["certutil", "-N", "--empty-password", "-d", f"sql:{directory}"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "certutil",
            "-A",
            "-n",
            "practice-ca",
            "-t",
            "C,C,",
            "-i",
            str(ca),
            "-d",
            f"sql:{directory}",
        ],
        check=True,
        capture_output=True,
    )
    return directory


def render_pngs(pdf: bytes, out_dir: Path, prefix: str, dpi: int = 60) -> list[Path]:
    """Render every page with pdftoppm; return the PNG paths in page order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / f"{prefix}.pdf"
    src.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", str(dpi), str(src), str(out_dir / prefix)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return sorted(out_dir.glob(f"{prefix}-*.png"))


def have_qpdf() -> bool:
    """qpdf is installed (used to read encryption parameters)."""
    return shutil.which("qpdf") is not None
