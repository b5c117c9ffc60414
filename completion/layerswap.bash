# bash completion for layerswap                                  -*- shell-script -*-
# Installed as share/bash-completion/completions/layerswap, where Debian's
# bash-completion loads it the first time `layerswap` is completed; it can
# also be sourced by hand (it needs none of bash-completion's helpers).
# Completes the commands; each command's options, read once per shell from
# `layerswap COMMAND --help` (so they match the binary); option values
# (--format, --dtype, folders for -o/--base, files for --summary); config
# files (*.json, *.yml, *.yaml) for merge, sweep and --sweep; checkpoints for
# inspect; folders for verify, demo and stats experts (NAME=PATH too).

_layerswap_commands="merge sweep stats inspect verify synth demo help"

# _layerswap_options PROGRAM COMMAND: the long and short options in COMMAND's
# --help (option lines and the synopsis), cached in _layerswap_opts_<COMMAND>.
_layerswap_options()
{
    local var="_layerswap_opts_$2" help
    if [[ -z ${!var+set} ]]; then
        if type -P timeout >/dev/null 2>&1; then
            help=$(timeout 10 "$1" "$2" --help 2>/dev/null)
        else
            help=$("$1" "$2" --help 2>/dev/null)
        fi
        # synopsis words ("[--mem BYTES]") and option lines ("  -o, --output DIR  ...")
        printf -v "$var" '%s' "$(printf '%s\n' "$help" | awk '
            /^Usage:/ { syn = 1 }
            syn && !/^Usage:/ && !/^ +[^ -]/ { syn = 0 }
            syn { print; next }
            /^ +-/ { match($0, /^ +/); if (RLENGTH > 4) next
                     line = substr($0, RLENGTH + 1); p = index(line, "  ")
                     print (p ? substr(line, 1, p - 1) : line) }
            END { print "--help" }' |
            grep -oE -- '(^|[][ ,|])--?[a-zA-Z][a-zA-Z0-9-]*' | tr -d '[] ,|' | sort -u | tr '\n' ' ')"
    fi
    REPLY=${!var}
}

# _layerswap_files CUR EXT...: files with one of the extensions, and folders
_layerswap_files()
{
    local cur=$1 f ext
    shift
    local IFS=$'\n'
    for f in $(compgen -f -- "$cur"); do
        if [[ -d $f ]]; then
            COMPREPLY+=("$f")
            continue
        fi
        for ext in "$@"; do
            if [[ $f == *."$ext" ]]; then
                COMPREPLY+=("$f")
                break
            fi
        done
    done
}

_layerswap_dirs()
{
    local IFS=$'\n'
    COMPREPLY+=($(compgen -d -- "$1"))
}

_layerswap()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]} cmd="" i
    COMPREPLY=()
    compopt -o filenames 2>/dev/null
    [[ $prog == "~/"* ]] && prog=$HOME/${prog#"~/"}
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$_layerswap_commands --help --version -V" -- "$cur"))
        return 0
    fi
    if [[ $cmd == help ]]; then
        ((COMP_CWORD == i + 1)) && COMPREPLY=($(compgen -W "${_layerswap_commands% help}" -- "$cur"))
        return 0
    fi
    case $prev in
        -o | --output | --base) _layerswap_dirs "$cur"; return 0 ;;
        --format) COMPREPLY=($(compgen -W "safetensors hdf5" -- "$cur")); return 0 ;;
        --dtype) COMPREPLY=($(compgen -W "bf16 f16 f32" -- "$cur")); return 0 ;;
        --sweep) _layerswap_files "$cur" json; return 0 ;;
        --summary) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
        --mem | --progress | --index | --layers | --hidden | --intermediate | --vocab | \
        --experts | --seed | --shard-size | --task | --language) return 0 ;;
    esac
    if [[ $cur == -* ]]; then
        local REPLY
        _layerswap_options "$prog" "$cmd"
        COMPREPLY=($(compgen -W "$REPLY" -- "$cur"))
        compopt +o filenames 2>/dev/null
        return 0
    fi
    case $cmd in
        merge) _layerswap_files "$cur" json yml yaml ;;
        sweep) _layerswap_files "$cur" json ;;
        inspect) _layerswap_files "$cur" safetensors json h5 ;;
        verify | demo) _layerswap_dirs "$cur" ;;
        stats)
            if [[ $cur == *=* ]]; then   # NAME=PATH: complete the PATH
                local name=${cur%%=*} d
                local IFS=$'\n'
                for d in $(compgen -d -- "${cur#*=}"); do COMPREPLY+=("$name=$d"); done
            else
                _layerswap_dirs "$cur"
            fi
            ;;
    esac
    return 0
}
complete -F _layerswap layerswap
