package engine

import "github.com/ktrace-dev/ktrace/graph"

// The builder's edge table: edges found by their packed keys in open
// addressing, with the counts the walk adds to.

// edgeKey names an edge by numbers only, so that finding one compares 16
// bytes: its nodes by sequence number and its group by name id (-1: none).
type edgeKey struct {
	from, to int32
	group    int32
	kind     graph.EdgeKind
	rel      graph.Relation
}

// edgeSlot is an edge in the builder's table: its key packed in 64 bits
// (packEdge) and the spans the walk counted behind it, each with a latency
// sample (observe), and their errors, in 24 bytes, so that the table of a
// set's edges stays in the caches while the spans stream through. The
// edge's other counts are the Edge's own; flushEdges adds the slot's to
// them, before they could overflow (Begin).
type edgeSlot struct {
	key           uint64
	count, errors uint32
	seq1          int32 // the edge's number+1; 0: an empty slot
}

// maxUnflushed bounds the spans added between two flushes of the edge
// slots' counts: a span counts on two edges at most, so no count passes
// math.MaxUint32.
const maxUnflushed = 1 << 30

// packEdge packs an edge's key in 64 bits when its numbers fit in 16 bits
// each (a set of fewer than 65,535 nodes and group names, the usual case).
func packEdge(from, to, group int32, kind graph.EdgeKind, rel graph.Relation) (uint64, bool) {
	if max(uint32(from), uint32(to), uint32(group+1)) >= 0xFFFF {
		return 0, false
	}
	return uint64(from)<<48 | uint64(to)<<32 | uint64(group+1)<<16 | uint64(kind)<<8 | uint64(rel), true
}

// edge returns the slot of the edge from from to to, making the edge if
// it is new. The slot is b's to write until the next call.
func (b *builder) edge(from, to *node, kind graph.EdgeKind, rel graph.Relation, group string) *edgeSlot {
	gid := int32(-1)
	if group != "" {
		gid = b.names.id(group)
	}
	key, ok := packEdge(from.seq, to.seq, gid, kind, rel)
	if !ok {
		return b.bigEdge(edgeKey{from.seq, to.seq, gid, kind, rel}, from, to, group)
	}
	for h := edgeHash(key) & b.edgeMask; ; h = (h + 1) & b.edgeMask {
		sl := &b.edges[h]
		if sl.key == key && sl.seq1 != 0 {
			return sl
		}
		if sl.seq1 == 0 {
			*sl = edgeSlot{key: key, seq1: b.newEdge(edgeKey{from.seq, to.seq, gid, kind, rel}, from, to, group) + 1}
			if 4*len(b.edgeList) > 3*len(b.edges) {
				b.growEdges()
				return b.edge(from, to, kind, rel, group)
			}
			return sl
		}
	}
}

// edgeHash spreads a packed key's bits over the low ones.
func edgeHash(key uint64) uint64 {
	key ^= key >> 29
	return (key * 0x9E3779B97F4A7C15) >> 32
}

// newEdge makes the edge k and returns its number.
func (b *builder) newEdge(k edgeKey, from, to *node, group string) int32 {
	e := &edge{from: from, to: to, kind: k.kind, rel: k.rel, group: group, seq: int32(len(b.edgeList))}
	b.edgeList = append(b.edgeList, e)
	return e.seq
}

// bigEdge is edge for a key that does not pack.
func (b *builder) bigEdge(k edgeKey, from, to *node, group string) *edgeSlot {
	sl := b.bigEdges[k]
	if sl == nil {
		if b.bigEdges == nil {
			b.bigEdges = map[edgeKey]*edgeSlot{}
		}
		sl = &edgeSlot{seq1: b.newEdge(k, from, to, group) + 1}
		b.bigEdges[k] = sl
	}
	return sl
}

// growEdges doubles the edge table.
func (b *builder) growEdges() {
	old := b.edges
	b.edges = make([]edgeSlot, 2*len(old))
	b.edgeMask = uint64(len(b.edges) - 1)
	for _, sl := range old {
		if sl.seq1 != 0 {
			h := edgeHash(sl.key) & b.edgeMask
			for b.edges[h].seq1 != 0 {
				h = (h + 1) & b.edgeMask
			}
			b.edges[h] = sl
		}
	}
}

// flushEdges adds the counts the slots hold to their edges.
func (b *builder) flushEdges() {
	flush := func(sl *edgeSlot) {
		if sl.seq1 != 0 {
			e := b.edgeList[sl.seq1-1]
			e.count += int(sl.count)
			e.nlat += int(sl.count)
			e.errors += int(sl.errors)
			sl.count, sl.errors = 0, 0
		}
	}
	for i := range b.edges {
		flush(&b.edges[i])
	}
	for _, sl := range b.bigEdges {
		flush(sl)
	}
}
