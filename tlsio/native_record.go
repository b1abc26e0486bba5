package tlsio

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
)

// Record limits (RFC 8446, Section 5.2).
const (
	// maxCiphertext13 is the largest TLSCiphertext.length allowed:
	// "The length MUST NOT exceed 2^14 + 256 bytes. An endpoint that
	// receives a record that exceeds this length MUST terminate the
	// connection with a "record_overflow" alert."
	maxCiphertext13 = maxPlaintext + 256
	recordTypeCCS   = 20
)

// recordKeys protect one direction: an AEAD, its static IV and the
// sequence number. The zero value means "no protection yet".
type recordKeys struct {
	aead cipher.AEAD
	iv   [12]byte
	seq  uint64
	// n is the nonce being used; kept here so that passing it to the AEAD
	// interface does not allocate.
	n [12]byte
}

var errSeqExhausted = errors.New("tlsio: record sequence number exhausted")

// set installs the keys of a traffic secret and resets the sequence.
func (k *recordKeys) set(s *suite13, secret []byte) error {
	key, iv := s.trafficKeys(secret)
	a, err := s.aead(key)
	if err != nil {
		return err
	}
	k.aead, k.seq = a, 0
	copy(k.iv[:], iv)
	return nil
}

// nonce is the per-record nonce: the sequence number, left-padded, XORed
// with the IV (RFC 8446, Section 5.3).
func (k *recordKeys) nonce() []byte {
	k.n = k.iv
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], k.seq)
	for i := range s {
		k.n[4+i] ^= s[i]
	}
	return k.n[:]
}

// seal appends one protected record: payload, then the real content type,
// then pad zero bytes, encrypted in place in dst. len(payload) must not
// exceed maxPlaintext.
func (k *recordKeys) seal(dst []byte, typ byte, payload []byte, pad int) []byte {
	if k.aead == nil {
		// Before keys (ServerHello, HelloRetryRequest): a plaintext record.
		dst = append(dst, typ, 3, 3, byte(len(payload)>>8), byte(len(payload)))
		return append(dst, payload...)
	}
	n := len(payload) + 1 + pad + k.aead.Overhead()
	start := len(dst)
	dst = append(dst, recordTypeAppData, 3, 3, byte(n>>8), byte(n))
	body := len(dst)
	dst = append(dst, payload...)
	dst = append(dst, typ)
	for range pad {
		dst = append(dst, 0)
	}
	nonce := k.nonce()
	k.seq++
	dst = k.aead.Seal(dst[:body], nonce, dst[body:], dst[start:body])
	return dst
}

// open decrypts a whole protected record (header included) in place and
// returns the inner content type and the plaintext, a sub-slice of rec.
// The alert says what to send when it fails.
func (k *recordKeys) open(rec []byte) (byte, []byte, Alert, error) {
	hdr, ct := rec[:recordHeaderLen], rec[recordHeaderLen:]
	if len(ct) > maxCiphertext13 {
		return 0, nil, AlertRecordOverflow, errRecordOverflow
	}
	if k.seq == ^uint64(0) {
		return 0, nil, AlertInternalError, errSeqExhausted
	}
	nonce := k.nonce()
	pt, err := k.aead.Open(ct[:0], nonce, ct, hdr)
	if err != nil {
		// "If the decryption fails, the receiver MUST terminate the
		// connection with a "bad_record_mac" alert."
		return 0, nil, AlertBadRecordMAC, errBadMAC
	}
	k.seq++
	// The content type is the last non-zero byte; the zeros after it are
	// padding.
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		// "If a receiving implementation does not find a non-zero octet in
		// the cleartext, it MUST terminate the connection with an
		// "unexpected_message" alert."
		return 0, nil, AlertUnexpectedMessage, errNoContentType
	}
	if i > maxPlaintext {
		return 0, nil, AlertRecordOverflow, errRecordOverflow
	}
	return pt[i], pt[:i], 0, nil
}

var (
	errRecordOverflow = errors.New("tlsio: record too long")
	errBadMAC         = errors.New("tlsio: record failed to decrypt")
	errNoContentType  = errors.New("tlsio: record has no content type (all padding)")
)
