package stream

// SetValueMaxBytes sets the largest value a member writes in one record
// of the results or pairs topic, until the function it returns is called.
func SetValueMaxBytes(n int) (restore func()) {
	was := valueMaxBytes
	valueMaxBytes = n
	return func() { valueMaxBytes = was }
}
