package h1

// Default limits. They follow nginx's defaults (large_client_header_buffers
// 4 8k: one line at most 8 KiB, the head at most 32 KiB) and Apache's and
// Envoy's field count (100); browsers send 1–2 KiB heads, cookies rarely
// push past 8 KiB, so these leave ample room while bounding the memory a
// peer can make a connection hold before a request is even routed.
const (
	DefaultMaxHeadBytes    = 32 << 10 // request/status line + fields + final CRLF
	DefaultMaxFields       = 100      // header field lines (and, separately, trailer lines)
	DefaultMaxRequestLine  = 8 << 10  // request line without its CRLF; beyond it: 414
	DefaultMaxChunkLine    = 4096     // chunk-size line with extensions and CRLF, as net/http
	DefaultMaxTrailerBytes = 8 << 10  // whole trailer section including the final CRLF
)

// Config holds limits and the error hook. The zero value uses the defaults;
// a zero or negative limit means the default, not "unlimited".
type Config struct {
	MaxHeadBytes    int
	MaxFields       int
	MaxRequestLine  int
	MaxChunkLine    int
	MaxTrailerBytes int

	// CountError, if set, is called with Error.Reason once for every
	// protocol error returned (never for ErrNeedMore). It must not retain
	// or block; it is the codec's only way to report to metrics.
	CountError func(reason string)
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func (c *Config) maxHead() int      { return orDefault(c.MaxHeadBytes, DefaultMaxHeadBytes) }
func (c *Config) maxFields() int    { return orDefault(c.MaxFields, DefaultMaxFields) }
func (c *Config) maxReqLine() int   { return orDefault(c.MaxRequestLine, DefaultMaxRequestLine) }
func (c *Config) maxChunkLine() int { return orDefault(c.MaxChunkLine, DefaultMaxChunkLine) }
func (c *Config) maxTrailer() int   { return orDefault(c.MaxTrailerBytes, DefaultMaxTrailerBytes) }

// fail reports err to CountError and returns it.
func (c *Config) fail(err *Error) error {
	if c.CountError != nil {
		c.CountError(err.Reason)
	}
	return err
}
