package h2

// CodeCounts counts frames by error code; index i counts code i, and the
// last slot counts every code past the RFC's list.
type CodeCounts [16]uint64

func (cc *CodeCounts) add(c ErrCode) {
	if int(c) >= len(cc)-1 {
		c = ErrCode(len(cc) - 1)
	}
	cc[c]++
}

// Of returns the count for code c.
func (cc *CodeCounts) Of(c ErrCode) uint64 {
	if int(c) >= len(cc)-1 {
		return cc[len(cc)-1]
	}
	return cc[c]
}

// Total returns the sum over all codes.
func (cc *CodeCounts) Total() uint64 {
	var n uint64
	for _, v := range cc {
		n += v
	}
	return n
}

// Stats are a Conn's counters, for metrics. Read them with Conn.Stats;
// counters only grow, gauges are current values.
type Stats struct {
	ActiveStreams  int // gauge: open and half-closed streams
	BlockedStreams int // gauge: streams waiting for a window (OnWindowOpen)

	StreamsOpened  uint64 // streams accepted (server) or opened (client)
	StreamsRefused uint64 // peer streams refused (limit, GOAWAY, header list too large)

	GoAwaySent     CodeCounts
	GoAwayReceived CodeCounts
	ResetsSent     CodeCounts
	ResetsReceived CodeCounts

	FlowStalls       uint64 // WriteData calls cut short by a window
	WindowUpdatesOut uint64 // WINDOW_UPDATE frames sent
	PingsReceived    uint64 // PINGs answered
	BytesDataIn      uint64 // DATA payload delivered to the caller
	BytesDataOut     uint64 // DATA payload queued by WriteData
}
