package stream

import "github.com/twmb/franz-go/pkg/kgo"

// SetValueMaxBytes sets the largest value a member writes in one record
// of the results or pairs topic, until the function it returns is called.
func SetValueMaxBytes(n int) (restore func()) {
	was := valueMaxBytes
	valueMaxBytes = n
	return func() { valueMaxBytes = was }
}

// InternalCodecs lists the codecs a member compresses its internal topics
// with.
func InternalCodecs() []kgo.CompressionCodec { return internalCodecs() }
