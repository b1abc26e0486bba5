// Package exchange holds what one request's life needs whatever the
// protocols on either side: the retry policy (Decide, a pure function of
// the attempt's facts) and the replay buffer that keeps request body
// bytes for a retry (Replay). Package proxy's two client kinds (HTTP/1.1
// connection, HTTP/2 stream) and two upstream kinds (HTTP/1.1, h2c/h2)
// call it from all four protocol pairs.
//
// Threading: none of its own. Values are owned by the loop that owns the
// request; nothing here does I/O, reads the clock, logs or starts a
// goroutine.
//
// Limits: a Replay holds at most the limit its caller passes per Keep
// (proxy's RetryBodyBytes, 64 KiB by default), then gives up for good.
package exchange
