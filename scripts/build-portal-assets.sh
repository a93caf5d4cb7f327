#!/usr/bin/env bash
# Rebuilds the portal's static assets (crates/http/assets/) from the pinned
# NHS.UK frontend package on npm, so that the Rust build needs no Node:
#   - the compiled stylesheet, with its @font-face rules taken out (the
#     Frutiger files are on assets.nhs.uk, which the portal's
#     Content-Security-Policy, default-src 'self', does not load; the NHS
#     font stack falls back to Arial), its icon URLs pointed at our copies and
#     its fractions rounded to 6 places (no run of ten digits, which the
#     project's scans would read as an NHS number);
#   - the ES module bundle and a small module of our own that starts it
#     (no inline script: the CSP allows none);
#   - the icons the stylesheet uses, the favicon, and a note of the package,
#     its version and its licence (MIT).
# Each file is named with a digest of its content, so it can be cached for a
# year (`immutable`) and a new build is a new URL. The list the binary serves
# (include_bytes!) is written to crates/http/src/portal/asset_files.rs.
#
# Usage: scripts/build-portal-assets.sh   (needs npm and python3; commit the result)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

NHSUK_FRONTEND_VERSION=10.6.1   # pinned: change here, rebuild, review the diff

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "nhsuk-frontend@$NHSUK_FRONTEND_VERSION" >/dev/null && tar xzf nhsuk-frontend-*.tgz)
dist="$work/package/dist/nhsuk"
out="$root/crates/http/assets"
rm -rf "$out"
mkdir -p "$out"

NHSUK_FRONTEND_VERSION=$NHSUK_FRONTEND_VERSION python3 - "$work/package" "$out" "$root/crates/http/src/portal/asset_files.rs" <<'PY'
import hashlib, os, re, sys

package, out, manifest = sys.argv[1:4]
dist = os.path.join(package, "dist", "nhsuk")
version = os.environ["NHSUK_FRONTEND_VERSION"]
files = []  # (logical name, served name, content type)


def put(logical, data, content_type):
    stem, ext = os.path.splitext(logical)
    served = f"{stem}.{hashlib.sha256(data).hexdigest()[:12]}{ext}"
    with open(os.path.join(out, served), "wb") as f:
        f.write(data)
    files.append((logical, served, content_type))
    return served


def read(path):
    with open(os.path.join(dist, path), "rb") as f:
        return f.read()


css = read("nhsuk-frontend.min.css").decode("utf-8")
# Fonts from another origin: dropped (see the script's header).
css, fonts = re.subn(r"@font-face\{[^}]*\}", "", css)
assert fonts > 0, "the stylesheet has no @font-face rules any more: review this script"
assert "assets.nhs.uk" not in css, "the stylesheet still names another origin"
icons = sorted(set(re.findall(r"url\(/assets/images/([a-z0-9-]+\.svg)\)", css)))
for icon in icons:
    served = put(icon, read(os.path.join("assets", "images", icon)), "image/svg+xml")
    css = css.replace(f"url(/assets/images/{icon})", f"url({served})")
leftover = re.findall(r"url\((?!data:)[^)]*\)", css)
assert all(any(s in u for _, s, _ in files) for u in leftover), f"unhandled url(): {leftover}"
css = re.sub(r"/\*# sourceMappingURL=[^*]*\*/", "", css)


# Fractions to 6 places (far below a pixel): the compiled values have up to
# 10 decimal digits, and a run of ten digits is what the project's scans
# read as an NHS number. No such run may remain in what we commit.
def six_places(match):
    text = ("%.6f" % round(float(match.group(0)), 6)).rstrip("0").rstrip(".")
    return text[1:] if match.group(1) == "" and text.startswith("0.") else text


css = re.sub(r"(?<![\w.])(\d*)\.\d{7,}", six_places, css)
assert not re.search(r"\d{10}", css), "a run of ten digits is left in the stylesheet"
put("nhsuk-frontend.css", css.encode("utf-8"), "text/css; charset=utf-8")

js = read("nhsuk-frontend.min.js").decode("utf-8")
js = re.sub(r"//# sourceMappingURL=\S*", "", js)
assert not re.search(r"\d{10}", js), "a run of ten digits in the bundle: review this script"
js_name = put("nhsuk-frontend.js", js.encode("utf-8"), "text/javascript; charset=utf-8")
start = (
    f'import{{initAll}}from"./{js_name}";'
    'document.body.classList.add("js-enabled","nhsuk-frontend-supported");initAll();\n'
)
put("portal.js", start.encode("utf-8"), "text/javascript; charset=utf-8")
put("favicon.ico", read(os.path.join("assets", "images", "favicon.ico")), "image/x-icon")
put("favicon.svg", read(os.path.join("assets", "images", "favicon.svg")), "image/svg+xml")
# The package ships no licence file; its package.json says MIT.
import json
with open(os.path.join(package, "package.json")) as f:
    meta = json.load(f)
with open(os.path.join(out, "NOTICE.txt"), "w") as f:
    f.write(f"Built from {meta['name']} {meta['version']} (npm), licence: {meta['license']}, "
            f"{meta.get('homepage', '')}\nby scripts/build-portal-assets.sh; do not edit these files.\n")

with open(manifest, "w") as f:
    f.write(f"// Written by scripts/build-portal-assets.sh from nhsuk-frontend {version}: do not edit.\n")
    f.write(f"\n/// The `nhsuk-frontend` version the assets were built from.\n")
    f.write(f'pub const NHSUK_FRONTEND_VERSION: &str = "{version}";\n')
    f.write("\n/// (logical name, served name, content type, bytes)\n#[rustfmt::skip]\n")
    f.write("pub const FILES: &[(&str, &str, &str, &[u8])] = &[\n")
    for logical, served, content_type in files:
        f.write(f'    ("{logical}", "{served}", "{content_type}", include_bytes!("../../assets/{served}")),\n')
    f.write("];\n")
print(f"nhsuk-frontend {version}: {len(files)} files in {out}")
PY
