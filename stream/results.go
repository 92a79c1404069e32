package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/engine"
)

// ErrNoResults says a group has published nothing (yet).
var ErrNoResults = errors.New("no results published")

// ReadResults reads group's partial results — the last value of every
// key, published from from to to (zero times: no bound) — and merges them
// into one partial. It reads what transactions committed, from the first
// result published at from up to the end the topic had when it began (its
// last stable offset); progress, if not nil, hears how many partials were
// read.
func ReadResults(ctx context.Context, k Kafka, group string, from, to time.Time, progress func(read int)) (*engine.Partial, error) {
	topic := ResultsTopic(group)
	// Transactions' ends come as records too, so that the end is reached.
	cl, err := kgo.NewClient(k.Opts(kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, k.Unreachable(err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("results of group %s (%s): %w", group, topic, err)
	}
	// A key's last value is the one read: one published before from is
	// left out whatever it was, so reading starts at from.
	var starts kadm.ListedOffsets
	if !from.IsZero() {
		if starts, err = adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic); err == nil {
			err = starts.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("results of group %s (%s) since %s: %w", group, topic, from.Format(time.RFC3339), err)
		}
	}
	want := map[int32]int64{} // partition → end offset
	consume := map[string]map[int32]kgo.Offset{topic: {}}
	published := false
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset <= 0 {
			return
		}
		published = true
		start := kgo.NewOffset().AtStart()
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			if s.Offset >= o.Offset {
				return // nothing published since from
			}
			start = kgo.NewOffset().At(s.Offset)
		}
		want[o.Partition] = o.Offset
		consume[topic][o.Partition] = start
	})
	if !published {
		return nil, fmt.Errorf("group %s: %w (is ktrace stream running on its span topic?)", group, ErrNoResults)
	}
	latest := map[string]*kgo.Record{}
	read := 0
	if len(want) > 0 {
		cl.AddConsumePartitions(consume)
	}
	err = readTo(ctx, cl, topic, want, func(r *kgo.Record) {
		latest[string(r.Key)] = r
		read++
	}, func() {
		if progress != nil {
			progress(read)
		}
	})
	if err != nil {
		return nil, err
	}
	var all *engine.Partial
	for key, r := range latest {
		if _, piece := pieceOf(key); piece {
			continue // read with the result's first record
		}
		// Each record is let go once merged: the merged partial grows as
		// the bytes read shrink, rather than beside all of them.
		delete(latest, key)
		value, err := resultValue(key, r, latest)
		if err != nil {
			return nil, fmt.Errorf("result %s of group %s: %w", key, group, err)
		}
		if r.Timestamp.Before(from) || !to.IsZero() && r.Timestamp.After(to) || len(value) == 0 {
			continue
		}
		p := &engine.Partial{}
		if err := p.UnmarshalBinary(value); err != nil {
			return nil, fmt.Errorf("result %s of group %s: %w", key, group, err)
		}
		if all == nil {
			all = p
		} else if err := all.Merge(p); err != nil {
			return nil, fmt.Errorf("result %s of group %s: %w", key, group, err)
		}
	}
	if all == nil {
		return nil, fmt.Errorf("group %s: %w in the window asked for", group, ErrNoResults)
	}
	return all, nil
}

// readTo polls cl, which consumes partitions of topic read committed with
// their transactions' ends (KeepControlRecords), until each partition in
// want has reached its end offset there, handing each data record to
// each, and saying after every poll to polled.
func readTo(ctx context.Context, cl *kgo.Client, topic string, want map[int32]int64, each func(*kgo.Record), polled func()) error {
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("reading %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end { // past the end asked for
				return
			}
			if !r.Attrs.IsControl() {
				each(r)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
		polled()
	}
	return nil
}
