#!/usr/bin/env bash
# Scans the built binaries and the git-tracked tree for hard-coded secrets (JC-STAR ★3
# S3.1-17 R1, S3.1-18 R2): PEM private keys, AWS-style access keys, and password literals in
# Rust code outside the test suites and the benchmark tools. Exit 0: nothing found; 1: findings
# (listed); 2: the binaries are not built.
#
#   scripts/scan-secrets.sh [BIN_DIR]     (default: target/release if built, else target/debug)
#
# tests/security/secrets.rs runs the same checks (and this script) as part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir="${1:-}"
if [[ -z "$bin_dir" ]]; then
    if [[ -x target/release/mamorid ]]; then bin_dir=target/release; else bin_dir=target/debug; fi
fi

# The files that hold these patterns as needles.
self_files='^(scripts/scan-secrets\.sh|tests/security/secrets\.rs)$'
pem='-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----'
aws='AKIA[0-9A-Z]{16}'
pw='password[[:space:]]*=[[:space:]]*"[^"]'

found=0
report() { echo "FOUND: $*"; found=1; }

for b in mamorid mamori; do
    f="$bin_dir/$b"
    if [[ ! -f "$f" ]]; then
        echo "missing binary $f (build first: cargo build --workspace --bins)" >&2
        exit 2
    fi
    if grep -q -a -E -- "$pem" "$f"; then report "$f: PEM private key"; fi
    if grep -q -a -E -- "$aws" "$f"; then report "$f: AWS-style key"; fi
    echo "scanned $f"
done

mapfile -d '' tracked < <(git ls-files -z)
files=()
for f in "${tracked[@]}"; do
    [[ -f "$f" ]] || continue
    [[ "$f" =~ $self_files ]] && continue
    files+=("$f")
done
while IFS= read -r hit; do report "$hit: PEM private key"; done \
    < <(grep -l -a -E -- "$pem" "${files[@]}" || true)
while IFS= read -r hit; do report "$hit"; done \
    < <(grep -n -o -a -E -- "$aws" "${files[@]}" || true)
rs=()
for f in "${files[@]}"; do
    [[ "$f" == *.rs ]] || continue
    # Tests and the benchmark tools (bench/, not shipped) use fixed passwords as inputs.
    [[ "$f" =~ (^|/)tests(/|\.rs$) ]] && continue
    [[ "$f" =~ ^bench/ ]] && continue
    rs+=("$f")
done
if ((${#rs[@]})); then
    while IFS= read -r hit; do report "hard-coded password: $hit"; done \
        < <(grep -n -i -E -- "$pw" "${rs[@]}" || true)
fi
echo "scanned ${#files[@]} tracked files (${#rs[@]} Rust sources outside tests and bench)"

if ((found)); then
    echo "secret scan: findings above"
    exit 1
fi
echo "secret scan: clean"
