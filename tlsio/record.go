package tlsio

// Record layer constants (RFC 8446, Section 5.1).
const (
	recordTypeAlert     = 21
	recordTypeHandshake = 22
	recordTypeAppData   = 23
	recordHeaderLen     = 5
	maxPlaintext        = 1 << 14
	alertLevelFatal     = 2
	maxMethodLen        = 16
)

// sniff is the verdict on the first bytes a client sent.
type sniff uint8

const (
	sniffMore  sniff = iota // not enough bytes to decide
	sniffReady              // the first record is complete: start the handshake
	sniffHTTP               // plaintext HTTP
	sniffBad                // not TLS; send the returned alert
)

// sniffFirstRecord checks the bytes received before the handshake starts.
// Waiting for a whole first record means a client that trickles its
// ClientHello costs no goroutine, and rejecting obvious garbage here gives
// it a definite alert (crypto/tls closes such connections silently).
func sniffFirstRecord(p []byte) (sniff, Alert) {
	if len(p) == 0 {
		return sniffMore, 0
	}
	switch b := p[0]; {
	case b >= 'A' && b <= 'Z':
		return sniffMethod(p), AlertUnexpectedMessage
	case b&0x80 != 0:
		// SSLv2-compatible ClientHello: a 2-byte length with the top bit set.
		return sniffBad, AlertProtocolVersion
	case b != recordTypeHandshake && b != recordTypeAlert:
		// RFC 8446, Section 5: "If a TLS implementation receives an
		// unexpected record type, it MUST terminate the connection with an
		// "unexpected_message" alert."
		return sniffBad, AlertUnexpectedMessage
	}
	if len(p) >= 2 && p[1] != 3 {
		return sniffBad, AlertProtocolVersion
	}
	if len(p) < recordHeaderLen {
		return sniffMore, 0
	}
	n := int(p[3])<<8 | int(p[4])
	if n > maxPlaintext {
		// RFC 8446, Section 5.1: "The length MUST NOT exceed 2^14 bytes. An
		// endpoint that receives a record that exceeds this length MUST
		// terminate the connection with a "record_overflow" alert."
		return sniffBad, AlertRecordOverflow
	}
	if len(p) < recordHeaderLen+n {
		return sniffMore, 0
	}
	return sniffReady, 0
}

// sniffMethod decides whether p starts like an HTTP request line: an
// upper-case token followed by a space ("GET ", "PRI " for h2c).
func sniffMethod(p []byte) sniff {
	for i, b := range p {
		switch {
		case b == ' ' && i > 0:
			return sniffHTTP
		case b >= 'A' && b <= 'Z' || b == '-' || b == '_':
		default:
			return sniffBad
		}
		if i >= maxMethodLen {
			return sniffBad
		}
	}
	return sniffMore
}
