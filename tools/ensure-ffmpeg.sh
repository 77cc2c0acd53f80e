#!/bin/sh
# Make sure `ffmpeg` and `ffprobe` are on PATH; `make demo` and `make test` run this first.
#
# They decode MP3 and other compressed input (audioread), MUSDB18's .stem.mp4 files (stempeg)
# and are needed by `import museval` (BSS Eval v4). When they are missing, they are installed
# with the system's package manager if this user may do so (root with apt-get, dnf or apk;
# Homebrew needs no root); otherwise the script stops and prints the command to run.
set -eu

have_ffmpeg() {
    command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1
}

if have_ffmpeg; then
    exit 0
fi

echo "ffmpeg/ffprobe not found on PATH; they are needed for MP3 input, MUSDB18 stems and museval."
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ffmpeg with apt-get ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
elif [ "$(id -u)" = "0" ] && command -v dnf >/dev/null 2>&1; then
    echo "Installing ffmpeg with dnf ..."
    dnf install -y -q ffmpeg
elif [ "$(id -u)" = "0" ] && command -v apk >/dev/null 2>&1; then
    echo "Installing ffmpeg with apk ..."
    apk add --quiet ffmpeg
elif command -v brew >/dev/null 2>&1; then
    echo "Installing ffmpeg with Homebrew ..."
    brew install ffmpeg
else
    echo "Install it, then run make again. One of:" >&2
    if command -v apt-get >/dev/null 2>&1; then
        echo "    sudo apt-get install ffmpeg" >&2
    elif command -v dnf >/dev/null 2>&1; then
        echo "    sudo dnf install ffmpeg" >&2
    fi
    echo "    conda install -c conda-forge ffmpeg        (inside a conda environment)" >&2
    exit 1
fi

if ! have_ffmpeg; then
    echo "The package manager finished but ffmpeg/ffprobe are still not on PATH ($PATH)." >&2
    exit 1
fi
echo "ffmpeg installed: $(command -v ffmpeg)"
