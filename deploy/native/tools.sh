#!/usr/bin/env bash
# System tools the native dev stack and the tests need, from Debian's packages when missing:
# Prometheus (and promtool) and docker-compose (validates the compose file without an engine).
# Java 17+ and Maven fetch Kafka's jars and build the mongo-java-server launcher; they are expected
# on the machine.
set -euo pipefail
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "tools: installing ${missing[*]} from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "tools: please install ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  fi
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "tools: $tool is required (Java 17+, Maven)" >&2; exit 1; }
done
