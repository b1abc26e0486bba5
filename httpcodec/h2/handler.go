package h2

import (
	"time"

	"golang.org/x/net/http2/hpack"
)

// Handler receives a Conn's events. Methods run synchronously inside Feed
// or OnTimer, on the caller's goroutine; they may call the Conn's write
// methods (WriteHeaders, WriteData, ResetStream, Consumed, ...), which only
// queue output. Slices passed to a method are valid only during the call:
// DATA aliases the buffer given to Feed, and field slices are reused.
// Strings inside fields are ordinary Go strings and may be kept.
type Handler interface {
	// OnHeaders delivers a request (server role) or a response (client
	// role), including 1xx informational responses. h is reused.
	OnHeaders(streamID uint32, h *Headers)
	// OnData delivers DATA payload (padding removed). Every byte must later
	// be reported with Consumed, even if dropped: that is what reopens the
	// peer's flow-control windows. Empty DATA without END_STREAM is not
	// delivered.
	OnData(streamID uint32, data []byte, endStream bool)
	// OnTrailers delivers a trailing header block; it always ends the
	// peer's side of the stream.
	OnTrailers(streamID uint32, fields []hpack.HeaderField)
	// OnReset reports a stream the caller knows about that ended
	// abnormally: reset by the peer (err.By == ByPeer), reset by the codec
	// because of a peer violation (ByCodec, a RST_STREAM is queued), or
	// refused by a peer's GOAWAY (ByPeer, REFUSED_STREAM: safe to retry).
	// ResetStream calls by the caller are not reported back.
	OnReset(streamID uint32, err *StreamError)
	// OnWindowOpen reports that a stream WriteData cut short may send again.
	OnWindowOpen(streamID uint32)
	// OnGoAway reports a GOAWAY from the peer. Streams this endpoint opened
	// above lastStreamID are reported through OnReset as refused.
	OnGoAway(lastStreamID uint32, code ErrCode, debug []byte)
	// OnPingAck reports the ACK of a Ping, with the round-trip time.
	OnPingAck(data [8]byte, rtt time.Duration)
	// OnSettings reports the peer's settings after each SETTINGS it sends
	// (MaxConcurrentStreams matters to connection pools).
	OnSettings(peer Settings)
}

// NopHandler implements Handler by doing nothing; embed it to implement
// only the methods you need.
type NopHandler struct{}

// OnHeaders does nothing.
func (NopHandler) OnHeaders(uint32, *Headers) {}

// OnData does nothing.
func (NopHandler) OnData(uint32, []byte, bool) {}

// OnTrailers does nothing.
func (NopHandler) OnTrailers(uint32, []hpack.HeaderField) {}

// OnReset does nothing.
func (NopHandler) OnReset(uint32, *StreamError) {}

// OnWindowOpen does nothing.
func (NopHandler) OnWindowOpen(uint32) {}

// OnGoAway does nothing.
func (NopHandler) OnGoAway(uint32, ErrCode, []byte) {}

// OnPingAck does nothing.
func (NopHandler) OnPingAck([8]byte, time.Duration) {}

// OnSettings does nothing.
func (NopHandler) OnSettings(Settings) {}
