package stream

// The internal topics: made, counted, grown.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxTopicName is the longest topic name Kafka takes.
const maxTopicName = 249

// topicNameFault says why Kafka would not take name as a topic's ("": it
// would): at most 249 characters, each an ASCII letter or digit, '.', '_'
// or '-', and not "." or "..". called is how the message names it (the
// caller's message shows the name itself).
func topicNameFault(name, called string) string {
	switch {
	case name == "." || name == "..":
		return fmt.Sprintf("Kafka takes no topic named %q", name)
	case len(name) > maxTopicName:
		return fmt.Sprintf("Kafka topic names take at most %d characters, and %s would have %d", maxTopicName, called, len(name))
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("Kafka topic names take only ASCII letters, digits, '.', '_' and '-', not %q", c)
		}
	}
	return ""
}

// CheckTopic says whether Kafka takes topic as a topic's name.
func CheckTopic(topic string) error {
	if fault := topicNameFault(topic, "it"); fault != "" {
		return fmt.Errorf("topic %q: %s", topic, fault)
	}
	return nil
}

// CheckGroup says whether group can name a group's internal topics
// (ktrace.GROUP.results and the others) as Kafka takes topic names.
func CheckGroup(group string) error {
	if group == "" {
		return errors.New("no consumer group")
	}
	// The longest of them: the others are the group between the same
	// characters Kafka takes.
	if fault := topicNameFault(SegmentsTopic(group), SegmentsTopic("GROUP")); fault != "" {
		return fmt.Errorf("group %q names the internal topics (ktrace.GROUP.results and others): %s", group, fault)
	}
	return nil
}

// ensureTopics creates the internal topics when missing: the spans topic
// with as many partitions as the span topic, the results topic compacted,
// the segments topic with as many partitions as the topic gathered (grown
// to as many when that topic has grown), and
// the pairs topic with as many to begin with (any number works: it is a
// pairing key's part each).
func (m *member) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(m.cfg.Kafka.Opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	parts, err := partitions(ctx, m.cfg.Kafka, adm, m.cfg.Topic)
	if errors.Is(err, errNoTopic) {
		return fmt.Errorf("span topic %s: not found (no collector has written to it yet, or the exporter names another topic)", m.cfg.Topic)
	}
	if err != nil {
		return fmt.Errorf("span topic %s: %w", m.cfg.Topic, err)
	}
	retention := strconv.FormatInt(m.cfg.ResultsRetention.Milliseconds(), 10)
	if err := create(ctx, adm, ResultsTopic(m.cfg.Group), 1, map[string]*string{"cleanup.policy": ptr("compact,delete"),
		"retention.ms": &retention}); err != nil {
		return err
	}
	if !m.cfg.ByTraceID {
		if err := create(ctx, adm, m.spans, parts, nil); err != nil {
			return err
		}
		if parts, err = partitions(ctx, m.cfg.Kafka, adm, m.spans); err != nil {
			return fmt.Errorf("spans topic %s: %w", m.spans, err)
		}
	}
	segments := SegmentsTopic(m.cfg.Group)
	if err := create(ctx, adm, segments, parts, deletedAfter(segmentsRetention)); err != nil {
		return err
	}
	if err := m.followSegments(ctx, adm, parts); err != nil {
		return err
	}
	pairs := PairsTopic(m.cfg.Group)
	if err := create(ctx, adm, pairs, parts, deletedAfter(pairsRetention)); err != nil {
		return err
	}
	n, err := partitions(ctx, m.cfg.Kafka, adm, pairs)
	if err != nil {
		return fmt.Errorf("pairs topic %s: %w", pairs, err)
	}
	m.pairKeys = int(n)
	m.gatheredParts.Store(parts)
	least := map[string]int{ResultsTopic(m.cfg.Group): minValueBytes, pairs: minValueBytes, segments: segmentRecordBytes}
	topics := slices.Sorted(maps.Keys(least))
	if !m.cfg.ByTraceID {
		topics = append(topics, m.spans)
	}
	limits := m.recordLimits(ctx, adm, topics)
	if !m.cfg.ByTraceID {
		m.spanRecordMax = min(limits[m.spans], recordMaxBytes) - recordRoom
	}
	return m.setRecordLimits(limits, least)
}

// setRecordLimits sets how large the records the member writes to the
// results, segments and pairs topics may be: under the smallest of their
// max.message.bytes (limits), which an earlier member or an operator may
// have set below the 16 MiB a member sets. A topic that cannot take the
// largest record the member must write there whole (least, by topic) is
// refused.
func (m *member) setRecordLimits(limits, least map[string]int) error {
	limit := kafkaDefaultMaxBytes
	for _, t := range slices.Sorted(maps.Keys(least)) {
		l := limits[t]
		if l-recordRoom < least[t] {
			return fmt.Errorf("%s takes records of at most %d bytes (max.message.bytes): a member needs at least %d there", t, l, least[t]+recordRoom)
		}
		limit = min(limit, l)
	}
	m.batchMax = limit - recordRoom/2
	m.valueMax = min(valueMaxBytes, limit-recordRoom)
	return nil
}

// minValueBytes is the smallest bound on a result's or a pairing part's
// record (valueMax) a member works with: below it, they would be cut in
// very many pieces.
const minValueBytes = 64 << 10

// segmentRecordBytes bounds a segment's record, which is not cut: the
// IDs of publishTraces traces, and room for the offsets of its late
// records.
const segmentRecordBytes = publishTraces*16 + 64<<10

// errNoTopic: the topic is not there.
var errNoTopic = errors.New("not found")

// partitions counts topic's partitions.
func partitions(ctx context.Context, k Kafka, adm *kadm.Client, topic string) (int32, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, k.Unreachable(err)
	}
	td, ok := details[topic]
	if !ok || td.Err != nil {
		return 0, errNoTopic
	}
	return int32(len(td.Partitions)), nil
}

// followSegments gives the segments topic as many partitions as the topic
// gathered has (parts), for a partition's segments are found by its
// number: fewer (the topic gathered has grown) are added to, another
// member may have added them meanwhile; more (that topic was made again
// with fewer) is refused.
func (m *member) followSegments(ctx context.Context, adm *kadm.Client, parts int32) error {
	segments := SegmentsTopic(m.cfg.Group)
	n, err := partitions(ctx, m.cfg.Kafka, adm, segments)
	switch {
	case err != nil:
		return fmt.Errorf("segments topic %s: %w", segments, err)
	case n > parts:
		return fmt.Errorf("segments topic %s has %d partitions, %s has %d: they must be as many (delete %s, and it is made again)",
			segments, n, m.spans, parts, segments)
	case n < parts:
		resp, err := adm.UpdatePartitions(ctx, int(parts), segments)
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.InvalidPartitions) {
			return fmt.Errorf("adding partitions to the segments topic %s (%s has %d now): %w", segments, m.spans, parts, err)
		}
		m.log.Printf("%s has %d partitions now: the segments topic %s grows from %d to as many", m.spans, parts, segments, n)
	}
	return nil
}

// create creates topic with n partitions and configs cfg, taking records
// up to recordMaxBytes, unless it is there.
func create(ctx context.Context, adm *kadm.Client, topic string, n int32, cfg map[string]*string) error {
	cfg = maps.Clone(cfg)
	if cfg == nil {
		cfg = map[string]*string{}
	}
	cfg["max.message.bytes"] = ptr(strconv.Itoa(recordMaxBytes))
	resp, err := adm.CreateTopics(ctx, n, -1, cfg, topic)
	if err != nil {
		return err
	}
	if r := resp[topic]; r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating %s: %w", topic, r.Err)
	}
	return nil
}

func ptr(s string) *string { return &s }

// recordMaxBytes is the largest record of the internal topics, set on each
// as a member makes it: more than Kafka's default (about 1 MiB), which a
// re-keyed span larger than that needs (a trace's piece is cut smaller
// where it can be: maxPieceBytes). The re-keying writes no larger batch
// than the spans topic takes (member.spanRecordMax); every other record
// is under 1 MiB, and so under the producer's default bound.
const recordMaxBytes = 16 << 20

// kafkaDefaultMaxBytes is Kafka's default max.message.bytes, that of a
// topic made without it.
const kafkaDefaultMaxBytes = 1048588

// recordRoom is what a record batch takes beside its records' values, at
// most, as a member writes them: a batch's limit less it bounds a value.
const recordRoom = 64 << 10

// recordLimits reads the topics' max.message.bytes, the largest record
// batch, compressed, that Kafka takes on each, in one request: Kafka's
// default, logged, for one that cannot be read.
func (m *member) recordLimits(ctx context.Context, adm *kadm.Client, topics []string) map[string]int {
	limits := make(map[string]int, len(topics))
	cfgs, err := adm.DescribeTopicConfigs(ctx, topics...)
	for _, t := range topics {
		limit, lerr := maxMessageBytes(cfgs, err, t)
		if lerr != nil {
			limit = kafkaDefaultMaxBytes
			m.log.Printf("%s: its max.message.bytes could not be read (%v): taking Kafka's default, %d", t, lerr, limit)
		}
		limits[t] = limit
	}
	return limits
}

// maxMessageBytes is topic's max.message.bytes in cfgs, which a request
// that failed with err answered.
func maxMessageBytes(cfgs kadm.ResourceConfigs, err error, topic string) (int, error) {
	if err != nil {
		return 0, err
	}
	rc, err := cfgs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return 0, err
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			return strconv.Atoi(*c.Value)
		}
	}
	return kafkaDefaultMaxBytes, nil
}

// valueMaxBytes is the largest value a member writes in one record of the
// results or the pairs topic (a variable for tests); a larger one is cut
// (cut). It is under Kafka's default largest record; a topic that takes
// less makes it smaller (member.setRecordLimits).
var valueMaxBytes = 900 << 10

// deletedAfter is the config of a topic whose records are deleted after
// retention; Kafka deletes whole log segments, so they are rolled often
// enough for the retention to hold.
func deletedAfter(retention time.Duration) map[string]*string {
	return map[string]*string{"cleanup.policy": ptr("delete"),
		"retention.ms": ptr(strconv.FormatInt(retention.Milliseconds(), 10)),
		"segment.ms":   ptr(strconv.FormatInt((retention / 6).Milliseconds(), 10))}
}

// checkPairKeys fails once the pairs topic has other than the partitions
// the member began with (one a pairing key's part: partitions added to it
// would have the two halves of a pair judged apart, by members that count
// the parts otherwise). A member that began after will count the new
// partitions, and so does this one when it starts again; until every
// member has, pairs may be missed. Kafka not answering is not a failure.
func (m *member) checkPairKeys(ctx context.Context, cl *kgo.Client) error {
	topic := PairsTopic(m.cfg.Group)
	n, err := partitions(ctx, m.cfg.Kafka, kadm.NewClient(cl), topic)
	if err != nil || int(n) == m.pairKeys {
		return nil
	}
	return fmt.Errorf("pairs topic %s has %d partitions, not the %d this member began with: partitions were added to it "+
		"(stopping, so that it starts again counting them; every member stops within %s)", topic, n, m.pairKeys, m.cfg.MetadataMaxAge)
}
