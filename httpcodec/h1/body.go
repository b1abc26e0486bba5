package h1

// BodyDecoder delimits a message body incrementally: feed it bytes, get the
// body data out as sub-slices of those bytes, and learn when the message
// ends. It never reads past the end of the message, so whatever follows
// (a pipelined request) stays with the caller. The zero value decodes an
// empty body; set it up with ForRequest, ForResponse or Reset. It is owned
// by one connection and not safe for concurrent use.
//
// A typical loop:
//
//	for !d.Done() {
//		data, n, err := d.Decode(buf)
//		if err == h1.ErrNeedMore {
//			break // keep buf, read more, call again
//		}
//		if err != nil {
//			return err
//		}
//		forward(data)
//		buf = buf[n:]
//	}
type BodyDecoder struct {
	Config Config

	kind      BodyKind
	state     chunkState
	remaining int64 // BodyLength: bytes left; BodyChunked: bytes left in this chunk
	trailers  Headers
	scan      lineScanner
	err       *Error // sticky once state is stFailed
}

// Reset prepares d for a body of the given kind; contentLength is used for
// BodyLength only.
func (d *BodyDecoder) Reset(kind BodyKind, contentLength int64) {
	t := d.trailers
	t.Reset()
	*d = BodyDecoder{Config: d.Config, kind: kind, trailers: t}
	switch kind {
	case BodyNone:
		d.state = stDone
	case BodyLength:
		d.remaining = contentLength
		if contentLength <= 0 {
			d.state = stDone
		}
	case BodyChunked:
		d.state = stSize
	case BodyUntilClose:
		d.state = stData
	}
}

// ForRequest prepares d for the body of r.
func (d *BodyDecoder) ForRequest(r *Request) { d.Reset(r.Body, r.ContentLength) }

// ForResponse prepares d for the body of r.
func (d *BodyDecoder) ForResponse(r *Response) { d.Reset(r.Body, r.ContentLength) }

// Done reports whether the whole message body, including any chunked
// trailer section, has been consumed.
func (d *BodyDecoder) Done() bool { return d.state == stDone }

// Remaining returns the body bytes still expected for BodyLength, or the
// bytes left in the current chunk for BodyChunked.
func (d *BodyDecoder) Remaining() int64 { return d.remaining }

// Trailers returns the trailer fields of a chunked body, complete once Done
// reports true. They are sub-slices of the buffer passed to the Decode call
// that consumed the trailer section and share its lifetime.
func (d *BodyDecoder) Trailers() *Headers { return &d.trailers }

// Decode consumes framing and body bytes from the start of in. It returns
// body data (a sub-slice of in, possibly empty) and n, the number of bytes
// of in consumed, data included. It returns ErrNeedMore, with n == 0, only
// when nothing at all can be consumed; otherwise err is nil and n > 0, or
// the body is Done. Call it again with in[n:] plus whatever arrives.
func (d *BodyDecoder) Decode(in []byte) (data []byte, n int, err error) {
	switch d.state {
	case stFailed:
		return nil, 0, d.err
	case stDone:
		return nil, 0, nil
	}
	switch d.kind {
	case BodyChunked:
		data, n, e := d.decodeChunked(in)
		if e != nil {
			d.state, d.err = stFailed, e
			return nil, 0, d.Config.fail(e)
		}
		if n == 0 && len(data) == 0 && d.state != stDone {
			return nil, 0, ErrNeedMore
		}
		return data, n, nil
	case BodyUntilClose:
		if len(in) == 0 {
			return nil, 0, ErrNeedMore
		}
		return in, len(in), nil
	}
	if len(in) == 0 {
		return nil, 0, ErrNeedMore
	}
	k := int64(len(in))
	if k > d.remaining {
		k = d.remaining
	}
	d.remaining -= k
	if d.remaining == 0 {
		d.state = stDone
	}
	return in[:k], int(k), nil
}

// EOF tells d that the peer closed the connection. It returns nil when the
// body ended cleanly (a read-until-close body ends here) and
// ErrUnexpectedEOF when the message was truncated.
func (d *BodyDecoder) EOF() error {
	if d.kind == BodyUntilClose {
		d.state = stDone
	}
	if d.state == stDone {
		return nil
	}
	return d.Config.fail(ErrUnexpectedEOF)
}
