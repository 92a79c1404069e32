#!/usr/bin/env bash
# Runs `ktrace check` for the GitHub Action: annotations on stdout, the job
# summary in $GITHUB_STEP_SUMMARY, JUnit and SARIF reports, and the outputs
# verdict, exit-code, junit and sarif in $GITHUB_OUTPUT. Exits with
# ktrace's exit code (an inconclusive verdict passes when
# INPUT_FAIL_ON_INCONCLUSIVE is "false").
#
# Inputs come from the environment (INPUT_SPEC, INPUT_JAEGER,
# INPUT_JAEGER_TOKEN, INPUT_FILE, INPUT_UI_URL, INPUT_JUNIT, INPUT_SARIF,
# INPUT_FAIL_ON_INCONCLUSIVE, INPUT_ARGS), never from the command line, so
# that no value is parsed by the shell and the token is not in any argv.
set -uo pipefail

fail() { echo "::error title=ktrace check::$*"; exit 2; }

: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
ktrace="${KTRACE_BIN:-ktrace}"
jaeger="${INPUT_JAEGER:-}"
file="${INPUT_FILE:-}"
if [ -n "$jaeger" ] && [ -n "$file" ]; then
  fail "give jaeger or file, not both"
elif [ -z "$jaeger" ] && [ -z "$file" ]; then
  fail "give jaeger (a Jaeger query address) or file (a trace file)"
fi

junit="${INPUT_JUNIT:-$RUNNER_TEMP/ktrace-check.xml}"
sarif="${INPUT_SARIF:-$RUNNER_TEMP/ktrace-check.sarif}"
args=(check --github --junit "$junit" --sarif "$sarif")
[ -n "${INPUT_SPEC:-}" ] && args+=(--spec "$INPUT_SPEC")
[ -n "$jaeger" ] && args+=(--jaeger "$jaeger")
[ -n "$file" ] && args+=(--file "$file")
[ -n "${INPUT_UI_URL:-}" ] && args+=(--ui-url "$INPUT_UI_URL")
if [ -n "${INPUT_ARGS:-}" ]; then
  read -r -a extra <<< "$INPUT_ARGS"
  args+=("${extra[@]}")
fi

# The token reaches ktrace through its environment variable only.
if [ -n "${INPUT_JAEGER_TOKEN:-}" ]; then
  export KTRACE_JAEGER_TOKEN="$INPUT_JAEGER_TOKEN"
fi
unset INPUT_JAEGER_TOKEN

"$ktrace" "${args[@]}"
code=$?
case $code in
  0) verdict=pass ;;
  1) verdict=violation ;;
  3) verdict=inconclusive ;;
  4) verdict=backend-error ;;
  *) verdict=bad-input ;;
esac
{
  echo "verdict=$verdict"
  echo "exit-code=$code"
  [ -f "$junit" ] && echo "junit=$junit"
  [ -f "$sarif" ] && echo "sarif=$sarif"
} >> "$GITHUB_OUTPUT"
if [ "$code" = 3 ] && [ "${INPUT_FAIL_ON_INCONCLUSIVE:-true}" = false ]; then
  echo "::warning title=ktrace check::inconclusive: too few traces, or they did not settle; not failing (fail-on-inconclusive: false)"
  exit 0
fi
exit "$code"
