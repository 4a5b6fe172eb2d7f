# Helpers for the scripts in scripts/deps, sourced by scripts/test.
#
# Each scripts/deps/<name>.sh installs (when missing) what one group of
# tests needs and exports the variables those tests read. Downloads are
# cached outside the repository, in $SLUICE_CACHE_DIR (default
# ~/.cache/sluice), so a second run starts at once.

: "${SLUICE_CACHE_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
export SLUICE_CACHE_DIR
mkdir -p "$SLUICE_CACHE_DIR"

# In CI (or when asked), a test whose server or tool is missing fails
# instead of skipping.
if [ "${CI:-}" = true ]; then
	export SLUICE_REQUIRE_DEPS=1
fi

deps_apt_updated=
# apt_install PKG... installs Debian packages that are not installed yet
# (root and apt-get needed; `apt-get update` runs once per scripts/test).
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "cannot install ${missing[*]} here (needs root and apt-get)"
		return 1
	fi
	if [ -z "$deps_apt_updated" ]; then
		apt-get update -qq >/dev/null
		deps_apt_updated=1
	fi
	echo "installing ${missing[*]} from Debian"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
