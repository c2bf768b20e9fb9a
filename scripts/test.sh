#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, checks, then runs every test.
# Real servers (Kafka, Redis, nginx, Prometheus, Chromium) are installed here when missing and
# started by the integration setup, which stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n[test] %s\n' "$*"; }

step "npm dependencies (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

step "system packages and Kafka jars (installed only when missing)"
npx tsx scripts/infra/cli.ts install all

step "build (tsc -b), type check, lint"
npm run build
npm run typecheck
npm run lint

step "tests: unit + integration"
npx vitest run "$@"
