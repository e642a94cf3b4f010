#!/usr/bin/env bash
# Checks the include graph between the subsystems of src/ against the
# allowed directions listed in docs/architecture.md (the ```layers block):
# a file in src/X may include "Y/..." only when X's line lists Y, and each
# line may list only subsystems of earlier lines, so the graph has no
# cycle. A line may also list one header of a later subsystem ("tasks/
# repository.h": a contract the subsystem declares for a lower one to
# implement); that header may include only what the listing line may.
# Run by ctest (bzzz_layering); exits 1 naming every violation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/architecture.md"

declare -A allowed
order=()
while IFS= read -r line; do
  [ -n "$line" ] || continue
  name=${line%%:*}
  allowed[$name]=" ${line#*:} "
  order+=("$name")
done < <(awk '/^```layers$/ {on=1; next} /^```$/ {on=0} on' "$doc")
[ ${#order[@]} -gt 0 ] || { echo "no \`\`\`layers block in $doc" >&2; exit 1; }

problems=0
# The table itself: only earlier subsystems (no cycles), and every
# directory of src/ has a line.
declare -A seen
for name in "${order[@]}"; do
  for dep in ${allowed[$name]}; do
    if [[ "$dep" == */* ]]; then
      # One header: it exists, and its own includes stay within this line.
      if [ ! -f "$root/src/$dep" ]; then
        echo "docs/architecture.md: $name may include $dep, which does not exist"
        problems=$((problems + 1))
        continue
      fi
      while IFS= read -r inc; do
        [ "$inc" = "${dep%%/*}" ] && inc_ok=1 || inc_ok=0
        if [ "$inc_ok" = 0 ] && [[ "${allowed[$name]}" != *" $inc "* ]]; then
          echo "src/$dep: includes $inc, which $name (allowed to include this header) may not"
          problems=$((problems + 1))
        fi
      done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z0-9_]+)\/.*/\1/p' "$root/src/$dep")
      continue
    fi
    if [ -z "${seen[$dep]:-}" ]; then
      echo "docs/architecture.md: $name may include $dep, which is not listed before it (a cycle or a typo)"
      problems=$((problems + 1))
    fi
  done
  seen[$name]=1
done
for dir in "$root"/src/*/; do
  name=$(basename "$dir")
  if [ -z "${allowed[$name]+x}" ]; then
    echo "src/$name has no line in the layers block of docs/architecture.md"
    problems=$((problems + 1))
  fi
done

# The includes.
while IFS=: read -r file lineno text; do
  from=${file#"$root"/src/}
  from=${from%%/*}
  to=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z0-9_]+)\/.*/\1/' <<<"$text")
  path=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$text")
  [ "$from" = "$to" ] && continue
  [ -n "${allowed[$from]+x}" ] || continue
  if [[ "${allowed[$from]}" != *" $to "* && "${allowed[$from]}" != *" $path "* ]]; then
    echo "${file#"$root"/}:$lineno: $from may not include $to ($text)"
    problems=$((problems + 1))
  fi
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z0-9_]+/' "$root/src" --include='*.h' --include='*.cc' || true)

if [ "$problems" -gt 0 ]; then
  echo "layering: $problems problem(s); the allowed directions are in docs/architecture.md" >&2
  exit 1
fi
echo "layering: ${#order[@]} subsystems, every include goes the allowed way"
