# Sourced by .ci/run: temporary directories that are removed on every exit path.
#
#   source .ci/lib.sh
#   cleanup_on_exit            # once, before the first make_temp
#   make_temp results          # results=$(mktemp -d), registered for removal
#
# make_temp sets a variable instead of printing the path: `x=$(make_temp)` would register the path
# in a subshell, and the parent would never remove it.

CI_TEMPS=()

make_temp() { # make_temp VAR: a new directory from mktemp -d, in VAR, removed at exit
  local __dir
  __dir=$(mktemp -d) || return 1
  CI_TEMPS+=("$__dir")
  printf -v "$1" '%s' "$__dir"
}

cleanup() { # removes every directory make_temp made; silent, keeps the exit status
  local __status=$? __dir
  for __dir in ${CI_TEMPS[@]+"${CI_TEMPS[@]}"}; do
    rm -rf -- "$__dir"
  done
  CI_TEMPS=()
  return "$__status"
}

cleanup_on_exit() { # cleanup on every exit: normal, error (set -u) and fatal signals (HUP, INT, TERM)
  # bash runs the EXIT trap before dying of a signal too, so one trap covers them all (only
  # SIGKILL escapes it). Subshells and command substitutions do not inherit it.
  trap cleanup EXIT
}
