package h2

import "time"

// Role says which end of the connection a Conn plays.
type Role uint8

const (
	// Server accepts streams: clients connect to sluice.
	Server Role = iota
	// Client opens streams: sluice talking h2c to an upstream.
	Client
)

// String returns "server" or "client".
func (r Role) String() string {
	if r == Server {
		return "server"
	}
	return "client"
}

// Config tunes a Conn. The zero value of every field selects the default
// named beside it; the defaults are also listed in doc.go.
type Config struct {
	// MaxConcurrentStreams is advertised as SETTINGS_MAX_CONCURRENT_STREAMS
	// and enforced on streams the peer opens. Default 100.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is advertised as SETTINGS_MAX_HEADER_LIST_SIZE and
	// enforced while decoding (RFC 9113 §6.5.2 size: name + value + 32 per
	// field). Default 64 KiB.
	MaxHeaderListSize uint32
	// HeaderTableSize bounds the HPACK dynamic table the peer may make us
	// keep, advertised as SETTINGS_HEADER_TABLE_SIZE. Default 4096.
	HeaderTableSize uint32
	// MaxEncoderTableSize bounds our encoder's dynamic table, whatever the
	// peer allows. Default 4096.
	MaxEncoderTableSize uint32
	// MaxReadFrameSize is advertised as SETTINGS_MAX_FRAME_SIZE. Default 16384.
	MaxReadFrameSize uint32
	// InitialStreamWindow is advertised as SETTINGS_INITIAL_WINDOW_SIZE: the
	// bytes one stream may have in flight towards us. Default 256 KiB.
	InitialStreamWindow uint32
	// ConnWindow is the connection receive window, raised from 65535 with a
	// WINDOW_UPDATE at start: the most a peer can ever make us buffer.
	// Default 1 MiB.
	ConnWindow uint32
	// EnableConnectProtocol advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
	// (RFC 8441) in the server role and accepts :protocol.
	EnableConnectProtocol bool

	// MaxHeaderBlockBytes caps the encoded size of one header block across
	// HEADERS and its CONTINUATIONs; beyond it the connection ends with
	// ENHANCE_YOUR_CALM (a block we stop decoding would desync HPACK).
	// Default 2 * MaxHeaderListSize.
	MaxHeaderBlockBytes uint32
	// MaxHeaderBlockFrames caps HEADERS plus CONTINUATION frames in one
	// block (CONTINUATION floods of empty frames). Default 64.
	MaxHeaderBlockFrames int
	// MaxQueuedControlFrames caps control frames (ACKs, RST_STREAM,
	// WINDOW_UPDATE, ...) queued and not yet taken by AppendOutput; a peer
	// that keeps asking for responses it does not read gets
	// ENHANCE_YOUR_CALM. Default 1000.
	MaxQueuedControlFrames int
	// MaxOutstandingPings caps Ping calls awaiting their ACK. Default 8.
	MaxOutstandingPings int

	// Flood budgets: at most Max events per Per window, else GOAWAY
	// ENHANCE_YOUR_CALM. See Budget for zero values.
	//
	// ResetBudget counts streams reset by the peer before they ended
	// (Rapid Reset, CVE-2023-44487) plus streams this codec had to reset or
	// refuse because of peer input. Default 200 per 10 s.
	ResetBudget Budget
	// PingBudget counts PINGs (not ACKs) received. Default 100 per 10 s.
	PingBudget Budget
	// SettingsBudget counts SETTINGS (not ACKs) received. Default 100 per 10 s.
	SettingsBudget Budget
	// WindowUpdateBudget counts WINDOW_UPDATE frames received; each DATA
	// frame we sent in the current or previous window adds two to Max,
	// since a well-behaved peer answers data with updates. Default 1000 per 1 s.
	WindowUpdateBudget Budget
	// JunkFrameBudget counts frames that cost work and carry nothing: DATA
	// without payload or END_STREAM, PRIORITY, unknown extension frames,
	// frames ignored on closed streams. Default 1000 per 10 s.
	JunkFrameBudget Budget

	// ClosedStreamRetention is how long a closed stream is remembered, so
	// that late frames get the treatment RFC 9113 §5.1 gives its closing
	// cause (ignored after our RST_STREAM, ...). Default 10 s.
	ClosedStreamRetention time.Duration
	// MaxClosedStreams caps how many closed streams are remembered. Default 128.
	MaxClosedStreams int

	// SettingsTimeout: our SETTINGS unacknowledged this long ends the
	// connection with SETTINGS_TIMEOUT. Default 10 s.
	SettingsTimeout time.Duration
	// GoAwayTimeout: phase 1 of Shutdown waits this long for its PING ACK
	// before sending the final GOAWAY. Default 1 s.
	GoAwayTimeout time.Duration

	// CountError, if set, is called with a short constant token each time
	// the codec raises an error or a defense trips (metrics hook).
	CountError func(token string)
}

// Budget allows at most Max events in each window of Per. The zero value
// selects the field's default; Max < 0 disables the check.
type Budget struct {
	Max int
	Per time.Duration
}

// Defaults.
const (
	DefaultMaxConcurrentStreams   = 100
	DefaultMaxHeaderListSize      = 64 << 10
	DefaultInitialStreamWindow    = 256 << 10
	DefaultConnWindow             = 1 << 20
	DefaultMaxHeaderBlockFrames   = 64
	DefaultMaxQueuedControlFrames = 1000
	DefaultMaxOutstandingPings    = 8
	DefaultClosedStreamRetention  = 10 * time.Second
	DefaultMaxClosedStreams       = 128
	DefaultSettingsTimeout        = 10 * time.Second
	DefaultGoAwayTimeout          = time.Second
)

// Default budgets.
var (
	DefaultResetBudget        = Budget{Max: 200, Per: 10 * time.Second}
	DefaultPingBudget         = Budget{Max: 100, Per: 10 * time.Second}
	DefaultSettingsBudget     = Budget{Max: 100, Per: 10 * time.Second}
	DefaultWindowUpdateBudget = Budget{Max: 1000, Per: time.Second}
	DefaultJunkFrameBudget    = Budget{Max: 1000, Per: 10 * time.Second}
)

func orU32(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func orBudget(b, def Budget) Budget {
	if b.Max == 0 {
		b.Max = def.Max
	}
	if b.Per == 0 {
		b.Per = def.Per
	}
	return b
}

// withDefaults returns c with every zero field replaced and values clamped
// into the ranges the protocol allows.
func (c Config) withDefaults() Config {
	c.MaxConcurrentStreams = orU32(c.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	c.MaxHeaderListSize = orU32(c.MaxHeaderListSize, DefaultMaxHeaderListSize)
	c.HeaderTableSize = orU32(c.HeaderTableSize, DefaultHeaderTableSize)
	c.MaxEncoderTableSize = orU32(c.MaxEncoderTableSize, DefaultHeaderTableSize)
	c.MaxReadFrameSize = min(max(orU32(c.MaxReadFrameSize, DefaultMaxFrameSize), DefaultMaxFrameSize), MaxFrameSizeLimit)
	c.InitialStreamWindow = min(orU32(c.InitialStreamWindow, DefaultInitialStreamWindow), MaxWindowSize)
	c.ConnWindow = min(max(orU32(c.ConnWindow, DefaultConnWindow), DefaultWindowSize), MaxWindowSize)
	if c.MaxHeaderBlockBytes == 0 {
		c.MaxHeaderBlockBytes = 2 * c.MaxHeaderListSize
		if c.MaxHeaderBlockBytes < c.MaxHeaderListSize { // overflow
			c.MaxHeaderBlockBytes = 1<<32 - 1
		}
	}
	c.MaxHeaderBlockFrames = orInt(c.MaxHeaderBlockFrames, DefaultMaxHeaderBlockFrames)
	c.MaxQueuedControlFrames = orInt(c.MaxQueuedControlFrames, DefaultMaxQueuedControlFrames)
	c.MaxOutstandingPings = orInt(c.MaxOutstandingPings, DefaultMaxOutstandingPings)
	c.ResetBudget = orBudget(c.ResetBudget, DefaultResetBudget)
	c.PingBudget = orBudget(c.PingBudget, DefaultPingBudget)
	c.SettingsBudget = orBudget(c.SettingsBudget, DefaultSettingsBudget)
	c.WindowUpdateBudget = orBudget(c.WindowUpdateBudget, DefaultWindowUpdateBudget)
	c.JunkFrameBudget = orBudget(c.JunkFrameBudget, DefaultJunkFrameBudget)
	c.ClosedStreamRetention = orDur(c.ClosedStreamRetention, DefaultClosedStreamRetention)
	c.MaxClosedStreams = orInt(c.MaxClosedStreams, DefaultMaxClosedStreams)
	c.SettingsTimeout = orDur(c.SettingsTimeout, DefaultSettingsTimeout)
	c.GoAwayTimeout = orDur(c.GoAwayTimeout, DefaultGoAwayTimeout)
	return c
}
