package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the CLI prints that a peer or a submitter wrote (job names, task
// errors and stderr tails, peer ids and addresses, credential names) goes
// through termSafe or termSafeText first, so none of it reaches the
// terminal as a control sequence: no ESC to clear the screen or move the
// cursor, no CR to overwrite a line, no BEL, no C1 controls, and no bidi
// overrides (U+202A..U+202E, U+2066..U+2069) to reorder what follows.
// --json output is left to encoding/json, for machines.

// termSafe is s as one terminal field: unchanged when every rune is
// printable (unicode.IsPrint: letters, marks, numbers, punctuation,
// symbols, the ASCII space), else Go-quoted ("evil\x1b[2J\rfake\u202e").
// The quotes say the value was escaped; a value that itself begins with a
// quote is quoted too, so an escaped value and a literal one that looks
// like it cannot be confused. Tabs and newlines are escaped as well, so a
// value keeps to its cell of a table.
func termSafe(s string) string {
	if strings.HasPrefix(s, `"`) || strings.IndexFunc(s, unsafeRune) >= 0 || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// termSafeText is termSafe for free text that may run over lines (an error
// message): newlines are kept, every other unsafe rune is escaped in place
// as Go writes it (\x1b, \r, \u202e), and a byte that is not UTF-8 as \xNN.
func termSafeText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r != '\n' && unsafeRune(r) }) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || !unsafeRune(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\x1b'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// unsafeRune: r could act on a terminal, or change how the text around it
// is shown, rather than print as itself. The bidi controls are format
// characters (Cf), which unicode.IsPrint already excludes.
func unsafeRune(r rune) bool { return !unicode.IsPrint(r) }
