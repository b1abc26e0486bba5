package tlsio

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Stateless session tickets. A ticket is the resumption PSK and what it
// was negotiated with, sealed with AES-256-GCM under a key that belongs to
// one ticket epoch. Epoch keys are derived from a random seed drawn when
// the Server is built, so they rotate with the caller's clock (the time
// passed to Feed) without any state or timer: a ticket is issued under the
// current epoch's key and accepted while its epoch is one of the last
// ticketEpochs ones and its lifetime has not run out.
const (
	ticketEpoch    = 24 * time.Hour
	ticketEpochs   = 8
	ticketLifetime = 7 * 24 * time.Hour // the RFC 8446 maximum
	ticketVersion  = 1
)

// ticketState is what a ticket carries.
type ticketState struct {
	suite   uint16
	created int64 // Unix milliseconds
	ageAdd  uint32
	psk     []byte
	sni     string
}

func (s *Server) ticketKey(epoch uint64) cipher.AEAD {
	m := hmac.New(sha256.New, s.ticketSeed[:])
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	m.Write([]byte("sluice ticket key"))
	m.Write(e[:])
	b, _ := aes.NewCipher(m.Sum(nil))
	a, _ := cipher.NewGCM(b)
	return a
}

func epochOf(now time.Time) uint64 { return uint64(now.Unix()) / uint64(ticketEpoch/time.Second) }

// sealTicket encrypts st under the key of now's epoch.
func (s *Server) sealTicket(rand io.Reader, now time.Time, st *ticketState) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(ticketVersion)
	b.AddUint16(st.suite)
	b.AddUint64(uint64(st.created))
	b.AddUint32(st.ageAdd)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(st.psk) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(st.sni)) })
	pt, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	epoch := epochOf(now)
	out := make([]byte, 8+12, 8+12+len(pt)+16)
	binary.BigEndian.PutUint64(out, epoch)
	if _, err := io.ReadFull(rand, out[8:20]); err != nil {
		return nil, err
	}
	return s.ticketKey(epoch).Seal(out, out[8:20], pt, out[:8]), nil
}

// openTicket decrypts a ticket; nil if it is not one of ours, from an epoch
// no longer accepted, or past its lifetime.
func (s *Server) openTicket(now time.Time, t []byte) *ticketState {
	if len(t) < 8+12+16 {
		return nil
	}
	epoch := binary.BigEndian.Uint64(t)
	cur := epochOf(now)
	if epoch > cur || cur-epoch >= ticketEpochs {
		return nil
	}
	pt, err := s.ticketKey(epoch).Open(nil, t[8:20], t[20:], t[:8])
	if err != nil {
		return nil
	}
	in := cryptobyte.String(pt)
	var v uint8
	var created uint64
	st := &ticketState{}
	var psk, sni cryptobyte.String
	if !in.ReadUint8(&v) || v != ticketVersion || !in.ReadUint16(&st.suite) || !in.ReadUint64(&created) ||
		!in.ReadUint32(&st.ageAdd) || !in.ReadUint8LengthPrefixed(&psk) || !in.ReadUint8LengthPrefixed(&sni) || !in.Empty() {
		return nil
	}
	st.created, st.psk, st.sni = int64(created), psk, string(sni)
	age := now.UnixMilli() - st.created
	if age < -int64(time.Minute/time.Millisecond) || age > ticketLifetime.Milliseconds() {
		return nil
	}
	return st
}
