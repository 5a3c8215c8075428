#!/usr/bin/env bash
# Install the general-text corpus of the miniature: WordNet 3.0 glosses from Debian (package wordnet-base,
# ~6 MB download, files under /usr/share/wordnet). Idempotent: does nothing when the files are present.
# Needs root (or sudo) and the Debian package registry; the committed sample (train_runs/data/) serves tests
# without it.
set -euo pipefail
if [ -f /usr/share/wordnet/data.noun ] && [ -f /usr/share/wordnet/data.verb ]; then
    echo "wordnet-base already installed (/usr/share/wordnet)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install_corpus.sh: need root or sudo to apt-get install wordnet-base" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show wordnet-base >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends wordnet-base
test -f /usr/share/wordnet/data.noun || { echo "install_corpus.sh: wordnet-base installed but /usr/share/wordnet/data.noun is missing" >&2; exit 1; }
echo "wordnet-base installed (/usr/share/wordnet)"
