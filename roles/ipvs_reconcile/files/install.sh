# netlb.ipvs ipvs_reconcile: install the tree from the bundle, in one task (tasks/bundle.yml).
# Arguments: the entry point's directory (holding bundle.tar), the tree, the node's Python,
# the bundle's SHA-1. The bundle is unpacked and byte-compiled beside the installed tree, then
# swapped in by two renames: a run that starts meanwhile finds the old tree or the new one,
# never half of either.
set -eu
lib=$1 tree=$2 python=$3 sum=$4
staging=$lib/.staging previous=$lib/.previous
umask 022
rm -rf -- "$staging" "$previous"  # what an interrupted install left
mkdir -- "$staging"
tar --extract --file="$lib/bundle.tar" --directory="$staging"
# The service's file system is read-only: the byte code is made now, by the Python that
# runs it, and names the final paths in tracebacks (-d).
"$python" -m compileall -q -d "$tree" "$staging/ansible_collections"
printf '%s\n' "$sum" > "$staging/ansible_collections/.bundle.sha1"
if [ -e "$tree" ] || [ -L "$tree" ]; then
    mv -T -- "$tree" "$previous"
fi
mv -T -- "$staging/ansible_collections" "$tree"
rm -rf -- "$previous" "$staging"
