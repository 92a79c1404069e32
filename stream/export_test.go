package stream

// SetResultMaxBytes sets the largest result a member writes whole, until
// the function it returns is called.
func SetResultMaxBytes(n int) (restore func()) {
	was := resultMaxBytes
	resultMaxBytes = n
	return func() { resultMaxBytes = was }
}
