# Replaces the lines between the config-reference markers in README.md with
# docs/config-reference.md, its headings one level down (outside code fences)
# and its first heading dropped (the README's section has its own).
/<!-- config-reference:start -->/ {
    print
    fence = 0; first = 1
    while ((getline line < "docs/config-reference.md") > 0) {
        if (line ~ /^```/) fence = !fence
        if (!fence && line ~ /^#/) {
            if (first) { first = 0; continue }
            line = "#" line
        }
        print line
    }
    skip = 1
    next
}
/<!-- config-reference:end -->/ { skip = 0 }
!skip { print }
