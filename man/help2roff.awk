# help2roff.awk: one command's `layerswap CMD --help` text -> a man page subsection.
#   awk -v cmd=merge -f help2roff.awk HELP.txt
# The help texts follow one layout, which this reads:
#   "Usage: layerswap CMD ..." and lines indented under it   -> the synopsis
#   "  -x, --opt ARG      description" (two spaces or more before the description;
#   a head alone on its line when it is long)                 -> an option (.TP)
#   lines indented by three spaces or more                    -> continue the option
#   any other line                                            -> running text (.PP)
# Portable awk (mawk, gawk, BSD awk): no gensub, no character classes in gsub.

function esc(s,    out, i, c, prev, opt) {  # roff-escape one line of text
    # every '-' of a word that starts with '-' (an option) is a minus sign, so
    # that options copied from the page work; hyphens inside words stay
    out = ""; prev = " "; opt = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (index(" ([|,/'\"=", c) > 0) opt = 0
        else if (c == "-" && index(" ([|,/'\"=", prev) > 0) opt = 1
        if (c == "\\") c = "\\e"
        else if (c == "-" && opt) c = "\\-"
        out = out c
        prev = substr(s, i, 1)
    }
    if (substr(out, 1, 1) == "." || substr(out, 1, 1) == "'") out = "\\&" out
    return out
}
function head(s,    n, i, w, out) {         # an option head: options bold, arguments italic
    n = split(s, w, " ")
    out = ""
    for (i = 1; i <= n; i++) {
        if (substr(w[i], 1, 1) == "-") out = out (i > 1 ? " " : "") "\\fB" esc(w[i]) "\\fR"
        else out = out (i > 1 ? " " : "") "\\fI" esc(w[i]) "\\fR"
    }
    gsub(/,\\fR/, "\\fR,", out)             # "--a," -> bold "--a" then ","
    return out
}
function synopsis(s,    rest) {             # "layerswap CMD rest" -> bold command, roman rest
    sub(/^ +/, "", s)
    if (index(s, "layerswap " cmd) == 1) {
        rest = substr(s, length("layerswap " cmd) + 1)
        return "\\fBlayerswap " cmd "\\fR" esc(rest)
    }
    return "    " esc(s)                        # a wrapped synopsis line
}
BEGIN { state = "start"; print ".SS \"layerswap " cmd "\"" }
state == "start" && /^Usage: / {
    sub(/^Usage: /, ""); print ".nf"; print synopsis($0); state = "syn"; next
}
state == "syn" && /^ +[^ -]/ { print synopsis($0); next }
state == "syn" { print ".fi"; print ".PP"; state = "text" }
/^$/ { if (state != "text" || !fresh) print ".PP"; state = "text"; fresh = 1; next }
/^  -/ {
    line = substr($0, 3)
    p = index(line, "  ")
    if (p > 0) { h = substr(line, 1, p - 1); d = substr(line, p); sub(/^ +/, "", d) }
    else { h = line; d = "" }
    print ".TP"; print head(h)
    if (d != "") print esc(d)
    state = "opt"; fresh = 0; next
}
/^   / && (state == "opt" || state == "text") { s = $0; sub(/^ +/, "", s); print esc(s); fresh = 0; next }
{
    if (state == "opt" || (state == "text" && !fresh && /:$/)) print ".PP"   # "Options:" heads its list
    state = "text"; fresh = 0
    print esc($0)
}
END { if (state == "syn") print ".fi" }
