// Package docs writes a system's documentation from its traces: Markdown
// pages (an index with a Mermaid graph, one page per service and per
// topic), Graphviz DOT and an SVG picture, AsyncAPI 3.0 documents per service and a
// Backstage catalog. Output is deterministic (sorted, no timestamps unless
// asked for) so a docs folder can live in git, and text written between
// keep markers in Markdown pages survives regeneration:
//
//	<!-- ktrace:keep NAME -->
//	anything
//	<!-- ktrace:end NAME -->
package docs
