// Package kafkatest holds what tests of ktrace's Kafka clients share, on
// the embedded broker (kfake).
package kafkatest

import (
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RefuseFirstWrite makes cluster refuse the first produce request that
// writes to topic (by its name or its ID, as requests name it), answering
// INVALID_RECORD for each of its partitions, as a broker does for a
// record it will not take. It returns how many it refused.
func RefuseFirstWrite(cluster *kfake.Cluster, topic string, id [16]byte) *atomic.Int32 {
	var refused atomic.Int32
	cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		hit := false
		for _, rt := range pr.Topics {
			hit = hit || rt.Topic == topic || rt.TopicID == id
		}
		if !hit || refused.Load() > 0 {
			return nil, nil, false
		}
		refused.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return &refused
}
