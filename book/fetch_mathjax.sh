#!/usr/bin/env bash
# Put MathJax 3 into book/_assets/mathjax (git-ignored) so the built book renders equations without any external URL.
# Needs npm and the npm registry, once: `npm pack` downloads the pinned tarball, its sha512 is checked, and only
# the single-file TeX->CommonHTML bundle and its web fonts are kept (about 2.5 MB).
set -euo pipefail
VERSION=3.2.2
INTEGRITY="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
DEST="$(cd "$(dirname "$0")" && pwd)/_assets/mathjax"

command -v npm >/dev/null || { echo "error: npm is needed once to fetch MathJax $VERSION (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$VERSION" >/dev/null)
tarball="$tmp/mathjax-$VERSION.tgz"
got="sha512-$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
if [ "$got" != "$INTEGRITY" ]; then
  echo "error: mathjax-$VERSION.tgz has integrity $got, expected $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp" package/es5/tex-chtml-full.js package/es5/output/chtml/fonts/woff-v2 package/LICENSE
rm -rf "$DEST"
mkdir -p "$DEST/output/chtml/fonts"
cp "$tmp/package/es5/tex-chtml-full.js" "$tmp/package/LICENSE" "$DEST/"
cp -r "$tmp/package/es5/output/chtml/fonts/woff-v2" "$DEST/output/chtml/fonts/"
echo "MathJax $VERSION -> $DEST ($(du -sh "$DEST" | cut -f1))"
