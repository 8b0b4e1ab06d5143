#!/usr/bin/env bash
# Stop early, with instructions, when no Java 17+ runtime is available for Spark.
set -euo pipefail

java_bin="java"
if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
  java_bin="${JAVA_HOME}/bin/java"
fi

explain() {
  cat >&2 <<MSG
ERROR: $1
Spark needs a Java 17 (or newer) runtime.
  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless
  RHEL/Fedora:    sudo dnf install -y java-17-openjdk-headless
  macOS:          brew install openjdk@17
Then make sure 'java -version' reports 17+ or set JAVA_HOME to the JDK folder.
MSG
  exit 1
}

command -v "$java_bin" >/dev/null 2>&1 || explain "no 'java' on PATH and JAVA_HOME is not set."
version_line="$("$java_bin" -version 2>&1 | head -n 1)"
major="$(sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1/' <<<"$version_line")"
if [[ "$major" == "1" ]]; then  # Java 8 style: 1.8.0_xxx
  major="$(sed -E 's/.*version "1\.([0-9]+).*/\1/' <<<"$version_line")"
fi
[[ "$major" =~ ^[0-9]+$ ]] || explain "could not read the Java version from: $version_line"
(( major >= 17 )) || explain "found Java $major ($version_line); Java 17+ is required."
