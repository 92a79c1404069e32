// Package engine is ktrace's fast path: it builds the service graph and
// finds the breaks in one walk over the spans, reading each span once and
// keeping no traces. It is the only door to that speed:
//
//	Run(ctx, traces, Options) (*graph.Graph, analyze.Report, error)
//	Collect(ctx, traces, Options) (*Partial, error)
//	(*Partial).Merge, Finish, MarshalBinary, UnmarshalBinary
//	(*Partial).Pairing, Settle, Facts; Pair(judged, context)
//	DecodeOTLP(data, resources, strings) ([]trace.Trace, bool)
//	SplitOTLP(data) ([]TracePiece, bool)
//
// DecodeOTLP reads OTLP protobuf straight off the wire (protowire) into
// spans, two and a half times as fast as file.OTLPProto (the OTLP
// protos), which is its plain reference: it reads only the plain form SDKs
// and collectors write and declines anything else, and FuzzDecodeOTLP
// (otlp_test.go) holds it equal to the reference wherever it does not
// decline. ktrace stream decodes its span records with it. SplitOTLP cuts
// a message into one per trace by reading only the trace IDs and copying
// the spans' bytes (what ktrace stream's re-keying writes); FuzzSplitOTLP
// holds that the pieces read, with file.OTLPProto, as the whole does.
//
// What it gives is what the plain references give: graph.Build for the
// graph, analyze.Breaks for the report. The rules are written there first,
// and FuzzAgree (agree_test.go) holds the engine equal to them on
// synthetic sets of every shape, on every trace file in the repository,
// on any number of workers, and over partials merged in any order through
// their bytes. To add an edge kind or a break rule, change graph or
// analyze and their docs first; FuzzAgree then says what here must follow.
//
// Inside, and nowhere else in ktrace:
//   - a per-trace index (index.go) that finds each span's parent next to
//     it before it builds a hash table, and reads a span's messaging view
//     through the layout of its attribute names (layout.go), remembered
//     by the names' addresses (addr.go: readers share equal strings);
//   - names given small ids by their addresses (names.go), so a span's
//     nodes, operations and edge are array lookups;
//   - edges in an open-addressing table of packed keys whose slots hold
//     the walk's counts (edges.go);
//   - latency samples in one log per builder (latlog.go), gathered per edge
//     and ranked without sorting (rank.go);
//   - producers in chunked lists (chunk.go, producers.go) joined with the
//     consumers that lost their context through a hash join with a bit
//     filter (join.go), the producers shared among the CPUs (split.go);
//   - the break candidates counted as the walk meets them and judged once
//     the graph is made (analyzer.go, findings.go), the lost hops counted
//     by their nodes' numbers.
//
// The rules do not depend on the order of the traces, so the traces of a
// run are shared among the workers in batches, each worker folding them
// into an analyzer of its own, and the analyzers merge: in one process
// (analyzer.Merge, which renumbers nodes and edges without copying the big
// lists), or across processes as Partials. A partial carries what pairing
// needs across traces — the consumers that lost their context, the
// producers they could pair with, root producers and the consumer spans
// links may point at — so a hop whose two ends were seen by different
// partials is still stitched. Latency samples travel whole, but for an
// edge busier than graph.ExactSamples, whose are counted by rounded value
// (graph.RoundLatency): its percentiles are rounded wherever it is
// finished, as graph.Percentiles says.
//
// Pairing (pairing.go) cuts what of a partial pairs across traces into
// parts by pairing key, for ktrace stream's members to send through a
// topic: the consumers that lost their context and copies of the
// producers by their record's topic and partition (or message ID), root
// producers and keyed consumers by service and record key, linked
// produce spans and consumer spans by trace. Pair judges one key's parts;
// Settle counts a partial's own. TestPairingAddsUp and FuzzPairing hold
// that what the pieces settle adds up to what the whole set settles.
//
// A partial's bytes are a header ("ktrace-partial", a format version byte)
// and the analyzer's state flattened into plain records, written field by
// field (partialwire.go; the first version, encoding/gob, is still read).
// Reading checks every length and every number that indexes something:
// bytes from anywhere give ErrPartial, never a panic.
package engine
