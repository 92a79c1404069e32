package render

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Names that come from traces (services, operations, topics, groups,
// attributes) are untrusted: anyone who can send spans chooses them. Each
// output format escapes them its own way, so that no name can add a
// column, a row, a heading, a link, HTML, a diagram statement or a
// terminal control sequence. JSON needs nothing beyond encoding/json.

// visible writes s with what a reader cannot see, or a terminal would
// obey, spelled out: control characters as \t, \n, \r or \xHH; C1
// controls, bidirectional and zero-width format characters as \uHHHH;
// invalid UTF-8 bytes as \xHH. With backslash set, a backslash itself is
// doubled, so that the result can be read back unambiguously.
func visible(s string, backslash bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 || (backslash && c == '\\') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// hidden reports C1 controls and the format characters that reorder or
// hide text (bidirectional overrides and isolates, zero-width characters,
// line and paragraph separators, the byte order mark).
func hidden(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r >= 0x200b && r <= 0x200f,
		r >= 0x2028 && r <= 0x202e,
		r >= 0x2060 && r <= 0x2069,
		r == 0xfeff:
		return true
	}
	return false
}

// Terminal is a name as a terminal shows it: no control sequence, no
// line break, nothing that reorders the text around it.
func Terminal(s string) string { return visible(s, false) }

// TSV is a name as one field of tab-separated output: backslash, tab,
// newline, carriage return and other control characters are written as
// \\, \t, \n, \r and \xHH, so every line keeps its columns.
func TSV(s string) string { return visible(s, true) }

// Markdown is a name as Markdown text, safe inside a line of a paragraph,
// a heading, a list item, a link's text or a table cell: the characters
// that open inline constructs (emphasis, code, links, images, tables,
// strikethrough, math, headings, footnotes) are backslash-escaped, <, > and
// & are entities (so no HTML), "://", "www." and "@" are broken up (so no
// autolink), and control characters are spelled out (so no line break,
// hence no block of its own).
func Markdown(s string) string {
	s = visible(s, false)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '&':
			b.WriteString("&amp;")
		case strings.IndexByte("\\`*_[]|~#!(){}$^@", c) >= 0,
			c == ':' && strings.HasPrefix(s[i:], "://"),
			c == '.' && i >= 3 && strings.EqualFold(s[i-3:i], "www"):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// mermaidText is a name inside a quoted Mermaid label: quotes, #, <, >,
// &, backticks and pipes become Mermaid's entity codes, control characters
// are spelled out (a label cannot end its line, nor a Markdown fence).
func mermaidText(s string) string {
	s = visible(s, false)
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '#':
			b.WriteString("#35;")
		case '"':
			b.WriteString("#quot;")
		case '<':
			b.WriteString("#lt;")
		case '>':
			b.WriteString("#gt;")
		case '&':
			b.WriteString("#amp;")
		case '`':
			b.WriteString("#96;")
		case '|':
			b.WriteString("#124;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// dotQuote is a name as a quoted Graphviz string: quotes and backslashes
// escaped (so no escape sequence of Graphviz's own), control characters
// spelled out.
func dotQuote(s string) string { return `"` + dotEscape(s) + `"` }

func dotEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(visible(s, false))
}

// N is a count with its noun, singular for one: N(1, "trace") is
// "1 trace", N(2, "trace") "2 traces".
func N(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
