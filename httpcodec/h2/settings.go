package h2

import (
	"math"
	"strconv"
)

// SettingID identifies a SETTINGS parameter (RFC 9113 §6.5.2).
type SettingID uint16

// Settings parameters: RFC 9113 §6.5.2, RFC 8441 (extended CONNECT) and
// RFC 9218 (priorities).
const (
	SettingHeaderTableSize       SettingID = 0x1
	SettingEnablePush            SettingID = 0x2
	SettingMaxConcurrentStreams  SettingID = 0x3
	SettingInitialWindowSize     SettingID = 0x4
	SettingMaxFrameSize          SettingID = 0x5
	SettingMaxHeaderListSize     SettingID = 0x6
	SettingEnableConnectProtocol SettingID = 0x8
	SettingNoRFC7540Priorities   SettingID = 0x9
)

var settingNames = [...]string{
	SettingHeaderTableSize:       "SETTINGS_HEADER_TABLE_SIZE",
	SettingEnablePush:            "SETTINGS_ENABLE_PUSH",
	SettingMaxConcurrentStreams:  "SETTINGS_MAX_CONCURRENT_STREAMS",
	SettingInitialWindowSize:     "SETTINGS_INITIAL_WINDOW_SIZE",
	SettingMaxFrameSize:          "SETTINGS_MAX_FRAME_SIZE",
	SettingMaxHeaderListSize:     "SETTINGS_MAX_HEADER_LIST_SIZE",
	SettingEnableConnectProtocol: "SETTINGS_ENABLE_CONNECT_PROTOCOL",
	SettingNoRFC7540Priorities:   "SETTINGS_NO_RFC7540_PRIORITIES",
}

// String returns the RFC name of the setting.
func (s SettingID) String() string {
	if int(s) < len(settingNames) && settingNames[s] != "" {
		return settingNames[s]
	}
	return "SETTINGS_UNKNOWN_0x" + strconv.FormatUint(uint64(s), 16)
}

// Setting is one parameter of a SETTINGS frame.
type Setting struct {
	ID  SettingID
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
func (s Setting) Valid() *ConnError {
	switch s.ID {
	case SettingEnablePush:
		// "Any value other than 0 or 1 MUST be treated as a connection
		// error (Section 5.4.1) of type PROTOCOL_ERROR."
		if s.Val > 1 {
			return connErr(ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1")
		}
	case SettingInitialWindowSize:
		// "Values above the maximum flow-control window size of 2^31-1 MUST
		// be treated as a connection error (Section 5.4.1) of type
		// FLOW_CONTROL_ERROR."
		if s.Val > MaxWindowSize {
			return connErr(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
		}
	case SettingMaxFrameSize:
		// "Values outside this range MUST be treated as a connection error
		// (Section 5.4.1) of type PROTOCOL_ERROR."
		if s.Val < DefaultMaxFrameSize || s.Val > MaxFrameSizeLimit {
			return connErr(ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE out of range")
		}
	case SettingEnableConnectProtocol:
		// RFC 8441 §3: "The value of the parameter MUST be 0 or 1."
		if s.Val > 1 {
			return connErr(ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")
		}
	case SettingNoRFC7540Priorities:
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
func (s *Settings) apply(st Setting) {
	switch st.ID {
	case SettingHeaderTableSize:
		s.HeaderTableSize = st.Val
	case SettingEnablePush:
		s.EnablePush = st.Val == 1
	case SettingMaxConcurrentStreams:
		s.MaxConcurrentStreams = st.Val
	case SettingInitialWindowSize:
		s.InitialWindowSize = st.Val
	case SettingMaxFrameSize:
		s.MaxFrameSize = st.Val
	case SettingMaxHeaderListSize:
		s.MaxHeaderListSize = st.Val
	case SettingEnableConnectProtocol:
		s.EnableConnectProtocol = st.Val == 1
	case SettingNoRFC7540Priorities:
		s.NoRFC7540Priorities = st.Val == 1
	}
}
