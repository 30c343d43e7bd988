# netlb.ipvs ipvs_reconcile: the role's one read of the node. On a converged node it is the
# only task that runs there; every other task runs only for what this printed.
#
# Arguments come in pairs: a path (or, without a slash, a systemd unit) and a shell pattern
# its state must match. For each one whose state does not, prints the name, a tab and the
# state. States:
#   absent | other
#   directory MODE UID GID          (MODE as stat %a: 755)
#   file MODE UID GID SHA1          (SHA1 of the content)
#   link TARGET
#   ActiveState=... NeedDaemonReload=... UnitFileState=...   (a unit, as systemctl show says)
# It only reads, so it runs in check mode too; whatever it cannot read differs.
set -f  # the patterns and states are never file names
while [ "$#" -ge 2 ]; do
    case $1 in
    /*)
        if [ -L "$1" ]; then
            state="link $(readlink -- "$1")"
        elif [ -f "$1" ]; then
            sum=$(sha1sum < "$1" 2>/dev/null) || sum=unreadable
            state="file $(stat -c '%a %u %g' -- "$1") ${sum%% *}"
        elif [ -d "$1" ]; then
            state="directory $(stat -c '%a %u %g' -- "$1")"
        elif [ -e "$1" ]; then
            state=other
        else
            state=absent
        fi
        ;;
    *)
        # One line, the properties sorted by name: systemctl prints them in its own order.
        # shellcheck disable=SC2046
        state=$(echo $(systemctl show --property=ActiveState --property=NeedDaemonReload \
                       --property=UnitFileState -- "$1" 2>&1 | LC_ALL=C sort))
        ;;
    esac
    # shellcheck disable=SC2254
    case $state in
    $2) ;;
    *) printf '%s\t%s\n' "$1" "$state" ;;
    esac
    shift 2
done
