# Sourced by the scripts: creates a virtual environment ($VENV, default .venv) and installs the
# project with the given extras (and pip constraints file $CONSTRAINTS, if set), again only when
# pyproject.toml, the extras or the constraints changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
extras="$1"
venv="${VENV:-.venv}"
constraints="${CONSTRAINTS:-}"
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(cat pyproject.toml ${constraints:+"$constraints"} <(echo "$extras") | sha256sum | cut -c1-16)"
if [[ ! -f $stamp ]]; then
  echo "Installing airflow-provider-castore-dam${extras:+[$extras]} into $venv (first run takes a few minutes)..."
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet ${constraints:+--constraint "$constraints"} -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
export PATH="$root/$venv/bin:$PATH"
