#!/usr/bin/env bash
# Checks the worker's layers (README.md, Layout): each folder includes only itself and the
# folders below it, the folders' include graph has no cycle, and neither the request core nor
# the backends include libmicrohttpd's or grpc's headers. Prints the graph; exits 1 on a breach.
set -euo pipefail
cd "$(dirname "$0")/.."

# What each folder may include besides itself (headers named without a folder are generated
# from proto/ and may be included anywhere).
declare -A below=(
    [common]=""
    [worker/oai]="common"
    [worker/rpc]="common"
    [worker/backend]="worker/rpc worker/oai common"
    [worker/core]="worker/backend worker/oai common"
    [worker/http]="worker/core worker/backend worker/oai common"
    [worker/grpc]="worker/core worker/backend worker/oai common"
    [worker]="worker/http worker/grpc worker/core worker/backend worker/rpc worker/oai common"
)
# Folders whose files may not include these system headers, and the files excused for now (an
# excused file still breaks the rule: it is listed so that nothing else may).
protocol_free="worker/core worker/backend"
excused="worker/backend/be_triton.c" # speaks gRPC to Triton itself

fail=0
declare -A edges=()
for f in common/*.[ch] worker/*.[ch] worker/*/*.[ch]; do
    [ -e "$f" ] || continue
    dir=$(dirname "$f")
    if [ -z "${below[$dir]+set}" ]; then
        echo "check-layers: $dir is in no layer (add it to scripts/check-layers.sh and README.md)"
        fail=1
        continue
    fi
    while IFS= read -r inc; do
        target=$(dirname "$inc")
        [ "$target" = . ] && continue
        [ "$target" = "$dir" ] && continue
        edges["$dir $target"]=1
        case " ${below[$dir]} " in
        *" $target "*) ;;
        *) echo "check-layers: $f includes $inc: $dir may include only ${below[$dir]:-nothing}"; fail=1 ;;
        esac
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    case " $protocol_free " in
    *" $dir "*)
        case " $excused " in *" $f "*) continue ;; esac
        if grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(microhttpd\.h|grpc/)' "$f"; then
            echo "check-layers: $f includes a libmicrohttpd or grpc header: $dir must not"
            fail=1
        fi ;;
    esac
done

echo "folder include graph:"
for e in "${!edges[@]}"; do echo "  $e"; done | sort
if ! printf '%s\n' "${!edges[@]}" | tsort >/dev/null 2>&1; then
    echo "check-layers: the folders include each other in a cycle"
    fail=1
fi
[ "$fail" = 0 ] && echo "check-layers: ok"
exit "$fail"
