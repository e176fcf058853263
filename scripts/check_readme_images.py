#!/usr/bin/env python3
"""Checks that the pictures README.md shows cannot drift (ctest docs.readme_images).

    scripts/check_readme_images.py --cli build/cli/flashjit README.md            # check: exit 1 on drift
    scripts/check_readme_images.py --cli build/cli/flashjit --update README.md   # redraw the mask picture

1. The mask picture. A comment in the Markdown file records the command that drew it:

       <!-- mask-picture: flashjit mask --spec '...' --sq 4096 --png docs/mask.png -->

   The command is split like a shell would (shlex), run with the built CLI in place of
   `flashjit` in the file's directory, with its --png pointed at a scratch file, and must
   exit 0. The file named by --png must be shown by the Markdown file (an image link to it)
   and must hold exactly the picture the CLI draws now: same size, same pixels. The CLI
   writes stored (uncompressed) deflate blocks, 3 MiB for 1024 x 1024 pixels, so the
   committed file is the CLI's PNG recompressed (zlib level 9, same scanlines): the check
   decodes both (every chunk CRC, the zlib stream's Adler-32) and compares the pixel bytes,
   so a change of any byte of the committed file fails it. --update writes the file anew.

2. The benchmark plot. Every image link to `.../perf/YYYY-MM-DD-*.png` must name an existing
   PNG whose date is the newest date of the `YYYY-MM-DD-*.png` files in that directory
   (docs/perf/): a newer plot that the README does not show is drift. At least one is
   required. scripts/plot_perf.py draws them (matplotlib; not needed here).

Paths are relative to the Markdown file's directory, as GitHub resolves its links.
Python 3 standard library only.
"""
import argparse
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import zlib

MASK_COMMENT = re.compile(r"<!--\s*mask-picture:\s*(.*?)\s*-->", re.S)
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"")
DATED_PLOT = re.compile(r"^(\d{4}-\d{2}-\d{2})-[^/]*\.png$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMAND_TIMEOUT_S = 300


class PngError(Exception):
    pass


def read_png(data):
    """(width, height, bit depth, colour type, scanlines) of an 8-bit RGB or RGBA PNG,
    scanlines unfiltered (filter bytes removed). Checks every chunk's CRC."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("no PNG signature")
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError(f"truncated chunk header at byte {pos}")
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if pos + 12 + length > len(data):
            raise PngError(f"truncated {kind!r} chunk at byte {pos}")
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PngError(f"CRC mismatch in the {kind.decode('latin-1')!r} chunk at byte {pos}")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if pos != len(data):
        raise PngError(f"{len(data) - pos} bytes after IEND")
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise PngError("IHDR must come first and IEND last")
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or ctype not in (2, 6) or comp or filt or interlace:
        raise PngError(f"only 8-bit RGB/RGBA, non-interlaced PNGs are read (depth {depth}, colour type {ctype})")
    try:
        raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    except zlib.error as e:
        raise PngError(f"bad zlib stream: {e}")
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise PngError(f"{len(raw)} bytes of scanlines, expected {height * (stride + 1)}")
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 0:
            pass
        elif f in (1, 2, 3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    p = a
                elif f == 2:
                    p = b
                elif f == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + p) & 0xFF
        else:
            raise PngError(f"unknown filter type {f} in scanline {y}")
        out += line
        prev = line
    return width, height, depth, ctype, bytes(out)


def write_png(width, height, ctype, pixels):
    """The same picture as a compact PNG: filter 0 scanlines, zlib level 9."""
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    raw = b"".join(b"\0" + pixels[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def image_links(text):
    return [a or b for a, b in IMAGE_LINK.findall(text)]


def check_mask(cli, root, text, links, update, errors):
    commands = MASK_COMMENT.findall(text)
    if not commands:
        errors.append("no mask picture: no `<!-- mask-picture: flashjit mask ... --png FILE -->` comment")
        return
    for command in commands:
        argv = shlex.split(command)
        if argv[:2] != ["flashjit", "mask"] or argv.count("--png") != 1 or argv.index("--png") + 1 >= len(argv):
            errors.append(f"mask-picture comment `{command}`: must be `flashjit mask ... --png FILE` (one --png)")
            continue
        at = argv.index("--png") + 1
        png = argv[at]
        if png not in links:
            errors.append(f"mask picture {png}: drawn by `{command}` but not shown (no image link to it)")
        with tempfile.TemporaryDirectory(prefix="fj-readme-") as tmp:
            fresh = os.path.join(tmp, "mask.png")
            run = [cli] + argv[1:at] + [fresh] + argv[at + 1:]
            p = subprocess.run(run, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), timeout=COMMAND_TIMEOUT_S)
            if p.returncode != 0:
                errors.append(f"`{command}` exited with status {p.returncode}:\n{p.stdout.decode(errors='replace')}")
                continue
            with open(fresh, "rb") as f:
                want = read_png(f.read())
        path = os.path.join(root, png)
        if update:
            data = write_png(want[0], want[1], want[3], want[4])
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            print(f"wrote {png} ({want[0]} x {want[1]} pixels, {len(data)} bytes)")
            continue
        try:
            with open(path, "rb") as f:
                have = read_png(f.read())
        except OSError as e:
            errors.append(f"mask picture {png}: cannot read it ({e.strerror}); --update draws it")
            continue
        except PngError as e:
            errors.append(f"mask picture {png}: not a valid PNG ({e}); --update draws it anew")
            continue
        if have[:4] != want[:4]:
            errors.append(f"mask picture {png} differs from what `{command}` draws: {have[0]} x {have[1]} pixels "
                          f"(colour type {have[3]}), the CLI draws {want[0]} x {want[1]} (colour type {want[3]})")
        elif have[4] != want[4]:
            first = next(i for i, (x, y) in enumerate(zip(have[4], want[4])) if x != y)
            bpp = 3 if want[3] == 2 else 4
            px = first // bpp
            n = sum(1 for i in range(0, len(want[4]), bpp) if have[4][i:i + bpp] != want[4][i:i + bpp])
            errors.append(f"mask picture {png} differs from what `{command}` draws: {n} of {want[0] * want[1]} pixels differ, the first "
                          f"at x {px % want[0]}, y {px // want[0]}; --update redraws it")
        else:
            print(f"ok: {png} is what `{command}` draws ({want[0]} x {want[1]} pixels)")


def check_plot(root, links, errors):
    plots = [link for link in links if os.path.basename(os.path.dirname(link)) == "perf"
             and DATED_PLOT.match(os.path.basename(link))]
    if not plots:
        errors.append("no benchmark plot: no image link to perf/YYYY-MM-DD-*.png")
        return
    for link in plots:
        directory = os.path.join(root, os.path.dirname(link))
        path = os.path.join(root, link)
        try:
            with open(path, "rb") as f:
                if not f.read(8) == PNG_SIGNATURE:
                    errors.append(f"benchmark plot {link}: not a PNG")
                    continue
        except OSError as e:
            errors.append(f"benchmark plot {link}: cannot read it ({e.strerror})")
            continue
        dated = sorted((m.group(1), name) for name in os.listdir(directory) for m in [DATED_PLOT.match(name)] if m)
        newest = dated[-1][0]
        date = DATED_PLOT.match(os.path.basename(link)).group(1)
        if date != newest:
            newer = ", ".join(name for d, name in dated if d == newest)
            errors.append(f"benchmark plot {link} is not the newest plot in {os.path.dirname(link)}/: "
                          f"{date} is older than {newer}")
        else:
            print(f"ok: {link} is the newest plot in {os.path.dirname(link)}/ ({date})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True, help="the built flashjit CLI (build/cli/flashjit)")
    ap.add_argument("--update", action="store_true", help="redraw the mask picture instead of checking it")
    ap.add_argument("readme", help="the Markdown file, e.g. README.md")
    args = ap.parse_args()
    cli = os.path.abspath(args.cli)
    root = os.path.dirname(os.path.abspath(args.readme))
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    links = image_links(text)
    errors = []
    check_mask(cli, root, text, links, args.update, errors)
    check_plot(root, links, errors)
    for e in errors:
        print(f"{args.readme}: {e}")
    if errors:
        print(f"{len(errors)} README image check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
