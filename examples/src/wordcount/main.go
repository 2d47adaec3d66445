// Command wordcount is a peergrid example task: it counts the words of the
// text on stdin. A word is a maximal run of letters and digits, lower-cased.
// It prints a header line naming the input, then one line per distinct word,
// most frequent first and alphabetically among equals:
//
//	usage: wordcount NAME
//	output: "# NAME: TOTAL words, DISTINCT distinct\n" then "COUNT WORD\n" lines
//
// The job runs one task per input file, with NAME from the {input} placeholder.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintf(os.Stderr, "wordcount: want 1 argument\nusage: wordcount NAME < text\n")
		os.Exit(2)
	}
	text, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wordcount: %v\n", err)
		os.Exit(1)
	}
	words := strings.FieldsFunc(string(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	counts := map[string]int{}
	for _, w := range words {
		counts[strings.ToLower(w)]++
	}
	distinct := make([]string, 0, len(counts))
	for w := range counts {
		distinct = append(distinct, w)
	}
	sort.Slice(distinct, func(i, j int) bool {
		a, b := distinct[i], distinct[j]
		if counts[a] != counts[b] {
			return counts[a] > counts[b]
		}
		return a < b
	})

	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "# %s: %d words, %d distinct\n", os.Args[1], len(words), len(distinct))
	for _, w := range distinct {
		fmt.Fprintf(out, "%d %s\n", counts[w], w)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "wordcount: %v\n", err)
		os.Exit(1)
	}
}
