package h1

// Field is one field line. Name and Value are sub-slices of the buffer that
// was parsed (Value without surrounding whitespace); they are valid only as
// long as the caller leaves those bytes of the buffer untouched.
type Field struct {
	Name  []byte
	Value []byte
}

// Headers is an ordered list of field lines, as received. Its backing array
// is kept across Reset, so a Headers reused for every message of a
// connection stops allocating after the first one.
type Headers struct {
	fields []Field
}

// Reset empties h and keeps its capacity.
func (h *Headers) Reset() { h.fields = h.fields[:0] }

// Len returns the number of field lines.
func (h *Headers) Len() int { return len(h.fields) }

// Fields returns the field lines in order. The slice aliases h.
func (h *Headers) Fields() []Field { return h.fields }

// Add appends a field line. The slices are kept, not copied.
func (h *Headers) Add(name, value []byte) {
	h.fields = append(h.fields, Field{Name: name, Value: value})
}

// Index returns the index of the first field at or after from whose name
// equals name ignoring ASCII case, or -1.
func (h *Headers) Index(name string, from int) int {
	for i := max(from, 0); i < len(h.fields); i++ {
		if equalFold(h.fields[i].Name, name) {
			return i
		}
	}
	return -1
}

// Get returns the value of the first field named name (ASCII case
// insensitive), or nil if there is none.
func (h *Headers) Get(name string) []byte {
	if i := h.Index(name, 0); i >= 0 {
		return h.fields[i].Value
	}
	return nil
}

// Has reports whether a field named name is present.
func (h *Headers) Has(name string) bool { return h.Index(name, 0) >= 0 }

// HasToken reports whether any field named name carries token as an
// element of its comma-separated list (RFC 9110 §5.6.1), ignoring case.
// Example: h.HasToken("Connection", "close").
func (h *Headers) HasToken(name, token string) bool {
	for i := h.Index(name, 0); i >= 0; i = h.Index(name, i+1) {
		if listHas(h.fields[i].Value, token) {
			return true
		}
	}
	return false
}

// listHas reports whether the comma-separated list v contains tok.
func listHas[S ~string | ~[]byte](v []byte, tok S) bool {
	for len(v) > 0 {
		var elem []byte
		elem, v = nextElem(v)
		if equalFold(elem, tok) {
			return true
		}
	}
	return false
}

// nextElem splits the first element off a comma-separated list, trimming
// OWS; empty elements come back empty.
func nextElem(v []byte) (elem, rest []byte) {
	for i := 0; i < len(v); i++ {
		if v[i] == ',' {
			return trimOWS(v[:i]), v[i+1:]
		}
	}
	return trimOWS(v), nil
}

// IsHopByHopName reports whether name is one of the fixed hop-by-hop field
// names: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade. They describe one connection, never the
// message, so a proxy must not forward them (RFC 9110 §7.6.1; Keep-Alive
// and Proxy-Connection are their pre-standard relatives).
func IsHopByHopName(name []byte) bool {
	// Dispatch on length so most names cost one comparison at most.
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	}
	return false
}

// IsHopByHop reports whether a proxy must drop the field name when
// forwarding a message whose fields are h: a fixed hop-by-hop name, or a
// name listed as a connection option in one of h's Connection fields
// (RFC 9110 §7.6.1: "Intermediaries MUST parse a received Connection header
// field before a message is forwarded and, for each connection-option in this
// field, remove any header or trailer field(s) from the message with the same
// name as the connection-option, and then remove the Connection header field
// itself"). Host and Content-Length are never
// dropped on a Connection option's say: removing them would change routing or
// framing, which is what "Connection: Content-Length" attacks count on.
func (h *Headers) IsHopByHop(name []byte) bool {
	if IsHopByHopName(name) {
		return true
	}
	if !nominable(name) {
		return false
	}
	for i := h.Index("connection", 0); i >= 0; i = h.Index("connection", i+1) {
		if listHas(h.fields[i].Value, name) {
			return true
		}
	}
	return false
}

// nominable reports whether a Connection option may remove the field.
func nominable(name []byte) bool {
	return !equalFold(name, "host") && !equalFold(name, "content-length")
}
