// Package render writes ktrace's results for people and programs: text
// tables (lipgloss when the output is a terminal, tab-separated otherwise),
// JSON with documented stable field names, Graphviz DOT, Mermaid and SVG.
//
// Renderers take a result and an io.Writer; they never decide where output
// goes or whether it is a terminal — the caller passes a Style.
package render
