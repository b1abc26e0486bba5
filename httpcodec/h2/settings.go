package h2

import (
	"math"
	"strconv"
)

// settingID identifies a SETTINGS parameter (RFC 9113 §6.5.2).
type settingID uint16

// Settings parameters: RFC 9113 §6.5.2, RFC 8441 (extended CONNECT) and
// RFC 9218 (priorities).
const (
	settingHeaderTableSize       settingID = 0x1
	settingEnablePush            settingID = 0x2
	settingMaxConcurrentStreams  settingID = 0x3
	settingInitialWindowSize     settingID = 0x4
	settingMaxFrameSize          settingID = 0x5
	settingMaxHeaderListSize     settingID = 0x6
	settingEnableConnectProtocol settingID = 0x8
	settingNoRFC7540Priorities   settingID = 0x9
)

var settingNames = [...]string{
	settingHeaderTableSize:       "SETTINGS_HEADER_TABLE_SIZE",
	settingEnablePush:            "SETTINGS_ENABLE_PUSH",
	settingMaxConcurrentStreams:  "SETTINGS_MAX_CONCURRENT_STREAMS",
	settingInitialWindowSize:     "SETTINGS_INITIAL_WINDOW_SIZE",
	settingMaxFrameSize:          "SETTINGS_MAX_FRAME_SIZE",
	settingMaxHeaderListSize:     "SETTINGS_MAX_HEADER_LIST_SIZE",
	settingEnableConnectProtocol: "SETTINGS_ENABLE_CONNECT_PROTOCOL",
	settingNoRFC7540Priorities:   "SETTINGS_NO_RFC7540_PRIORITIES",
}

// String returns the RFC name of the setting.
func (s settingID) String() string {
	if int(s) < len(settingNames) && settingNames[s] != "" {
		return settingNames[s]
	}
	return "SETTINGS_UNKNOWN_0x" + strconv.FormatUint(uint64(s), 16)
}

// setting is one parameter of a SETTINGS frame.
type setting struct {
	ID  settingID
	Val uint32
}

// Protocol limits.
const (
	// DefaultMaxFrameSize is the initial SETTINGS_MAX_FRAME_SIZE (2^14).
	DefaultMaxFrameSize = 1 << 14
	// MaxFrameSizeLimit is the largest SETTINGS_MAX_FRAME_SIZE allowed (2^24-1).
	MaxFrameSizeLimit = 1<<24 - 1
	// MaxWindowSize is the largest flow-control window (2^31-1).
	MaxWindowSize = 1<<31 - 1
	// DefaultWindowSize is the initial window of a stream and of the connection.
	DefaultWindowSize = 65535
	// DefaultHeaderTableSize is the initial HPACK dynamic table size.
	DefaultHeaderTableSize = 4096
	// MaxStreamID is the largest stream identifier (2^31-1).
	MaxStreamID = 1<<31 - 1
)

// Valid checks the value against the ranges RFC 9113 §6.5.2 sets, and
// returns the connection error the RFC requires when it is out of range.
func (s setting) Valid() *ConnError {
	switch s.ID {
	case settingEnablePush:
		// "Any value other than 0 or 1 MUST be treated as a connection
		// error (Section 5.4.1) of type PROTOCOL_ERROR."
		if s.Val > 1 {
			return connErr(ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1")
		}
	case settingInitialWindowSize:
		// "Values above the maximum flow-control window size of 2^31-1 MUST
		// be treated as a connection error (Section 5.4.1) of type
		// FLOW_CONTROL_ERROR."
		if s.Val > MaxWindowSize {
			return connErr(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
		}
	case settingMaxFrameSize:
		// "Values outside this range MUST be treated as a connection error
		// (Section 5.4.1) of type PROTOCOL_ERROR."
		if s.Val < DefaultMaxFrameSize || s.Val > MaxFrameSizeLimit {
			return connErr(ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE out of range")
		}
	case settingEnableConnectProtocol:
		// RFC 8441 §3: "The value of the parameter MUST be 0 or 1."
		if s.Val > 1 {
			return connErr(ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")
		}
	case settingNoRFC7540Priorities:
		// RFC 9218 §2.1: "... value other than 0 or 1 MUST treat this as a
		// connection error of type PROTOCOL_ERROR."
		if s.Val > 1 {
			return connErr(ErrCodeProtocol, "SETTINGS_NO_RFC7540_PRIORITIES not 0 or 1")
		}
	}
	return nil
}

// Settings holds the values of one endpoint's SETTINGS parameters.
type Settings struct {
	HeaderTableSize       uint32
	EnablePush            bool
	MaxConcurrentStreams  uint32 // math.MaxUint32 while unlimited
	InitialWindowSize     uint32
	MaxFrameSize          uint32
	MaxHeaderListSize     uint32 // math.MaxUint32 while unlimited
	EnableConnectProtocol bool
	NoRFC7540Priorities   bool
}

// InitialSettings returns the values every endpoint assumes for its peer
// before the peer's first SETTINGS frame (RFC 9113 §6.5.2).
func InitialSettings() Settings {
	return Settings{
		HeaderTableSize:      DefaultHeaderTableSize,
		EnablePush:           true,
		MaxConcurrentStreams: math.MaxUint32,
		InitialWindowSize:    DefaultWindowSize,
		MaxFrameSize:         DefaultMaxFrameSize,
		MaxHeaderListSize:    math.MaxUint32,
	}
}

// apply stores one already validated parameter. Unknown identifiers are
// ignored: "An endpoint that receives a SETTINGS frame with any unknown or
// unsupported identifier MUST ignore that setting."
func (s *Settings) apply(st setting) {
	switch st.ID {
	case settingHeaderTableSize:
		s.HeaderTableSize = st.Val
	case settingEnablePush:
		s.EnablePush = st.Val == 1
	case settingMaxConcurrentStreams:
		s.MaxConcurrentStreams = st.Val
	case settingInitialWindowSize:
		s.InitialWindowSize = st.Val
	case settingMaxFrameSize:
		s.MaxFrameSize = st.Val
	case settingMaxHeaderListSize:
		s.MaxHeaderListSize = st.Val
	case settingEnableConnectProtocol:
		s.EnableConnectProtocol = st.Val == 1
	case settingNoRFC7540Priorities:
		s.NoRFC7540Priorities = st.Val == 1
	}
}
