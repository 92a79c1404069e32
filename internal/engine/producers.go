package engine

// producers are the producer spans a builder remembers, in the order they
// were added, numbered from 0. Merging builders does not copy them: the
// merged builder's lists are kept as runs, each with the map from its
// builder's node numbers to the merged builder's.
type producers struct {
	runs []producerRun
	n    int
}

type producerRun struct {
	first int // number of the run's first producer
	list  chunkList[producer]
	to    []int32 // node number map; nil: the builder's own numbering
}

// add appends p, numbered in the builder's own nodes.
func (ps *producers) add(p producer) {
	if len(ps.runs) == 0 || ps.runs[len(ps.runs)-1].to != nil {
		ps.runs = append(ps.runs, producerRun{first: ps.n})
	}
	ps.runs[len(ps.runs)-1].list.Add(p)
	ps.n++
}

// Len returns the number of producers.
func (ps *producers) Len() int { return ps.n }

// at returns producer j in the builder's numbering.
func (ps *producers) at(j int) producer {
	r := len(ps.runs) - 1
	for ps.runs[r].first > j {
		r--
	}
	run := &ps.runs[r]
	p := *run.list.At(j - run.first)
	if run.to != nil {
		p.svc, p.topic = run.to[p.svc], run.to[p.topic]
	}
	return p
}

// merge appends o's producers, whose nodes map to this builder's through
// to. o is spent.
func (ps *producers) merge(o *producers, to []int32) {
	for _, r := range o.runs {
		r.list.trim()
		if r.to == nil {
			r.to = to
		} else {
			m := make([]int32, len(r.to))
			for i, n := range r.to {
				m[i] = to[n]
			}
			r.to = m
		}
		r.first += ps.n
		ps.runs = append(ps.runs, r)
	}
	ps.n += o.n
	*o = producers{}
}

// stretches calls f with producers lo to hi (exclusive), in order, in the
// stretches they sit in in their runs' chunks; the producers are in their
// run's numbering (run.to maps it to the builder's).
func (ps *producers) stretches(lo, hi int, f func(run *producerRun, c []producer)) {
	for ri := range ps.runs {
		run := &ps.runs[ri]
		from, to := max(lo, run.first)-run.first, min(hi, run.first+run.list.Len())-run.first
		for _, c := range run.list.Chunks() {
			if to <= 0 {
				break
			}
			if s, e := max(from, 0), min(len(c), to); s < e {
				f(run, c[s:e])
			}
			from -= len(c)
			to -= len(c)
		}
	}
}
