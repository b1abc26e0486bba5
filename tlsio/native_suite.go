package tlsio

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	_ "crypto/sha256" // registers crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA384

	"golang.org/x/crypto/chacha20poly1305"
)

// TLS 1.3 cipher suites (RFC 8446, Appendix B.4).
const (
	suiteAES128GCM uint16 = 0x1301
	suiteAES256GCM uint16 = 0x1302
	suiteChaCha20  uint16 = 0x1303
)

// suite13 is a TLS 1.3 cipher suite: an AEAD and the hash of its key
// schedule.
type suite13 struct {
	id     uint16
	hash   crypto.Hash
	keyLen int
	aead   func(key []byte) (cipher.AEAD, error)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// suites13 in server preference order; the client's order decides (see
// pickSuite).
var suites13 = [...]suite13{
	{suiteAES128GCM, crypto.SHA256, 16, newGCM},
	{suiteAES256GCM, crypto.SHA384, 32, newGCM},
	{suiteChaCha20, crypto.SHA256, 32, chacha20poly1305.New},
}

func suiteByID(id uint16) *suite13 {
	for i := range suites13 {
		if suites13[i].id == id {
			return &suites13[i]
		}
	}
	return nil
}

// expandLabel is HKDF-Expand-Label (RFC 8446, Section 7.1).
func (s *suite13) expandLabel(secret []byte, label string, context []byte, n int) []byte {
	info := make([]byte, 0, 4+6+len(label)+len(context))
	info = append(info, byte(n>>8), byte(n), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	out, err := hkdf.Expand(s.hash.New, secret, string(info), n)
	if err != nil {
		// Only for n > 255*hash size, which no caller asks for.
		panic("tlsio: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// extract is HKDF-Extract; a nil ikm or salt stands for a string of zeros
// of the hash's length, as the key schedule uses.
func (s *suite13) extract(ikm, salt []byte) []byte {
	if ikm == nil {
		ikm = make([]byte, s.hash.Size())
	}
	if salt == nil {
		salt = make([]byte, s.hash.Size())
	}
	out, err := hkdf.Extract(s.hash.New, ikm, salt)
	if err != nil {
		panic("tlsio: HKDF-Extract: " + err.Error())
	}
	return out
}

// deriveSecret is Derive-Secret with the transcript hash already taken.
func (s *suite13) deriveSecret(secret []byte, label string, transcriptHash []byte) []byte {
	return s.expandLabel(secret, label, transcriptHash, s.hash.Size())
}

// emptyHash is Transcript-Hash("") for the "derived" steps.
func (s *suite13) emptyHash() []byte { return s.hash.New().Sum(nil) }

// earlySecret starts the key schedule; psk is nil without resumption.
func (s *suite13) earlySecret(psk []byte) []byte { return s.extract(psk, nil) }

// nextSecret is the "derived" step followed by an Extract of ikm (the
// (EC)DHE shared secret, or nil for the master secret).
func (s *suite13) nextSecret(prev, ikm []byte) []byte {
	return s.extract(ikm, s.deriveSecret(prev, "derived", s.emptyHash()))
}

// finishedMAC is the verify_data of a Finished message (or a PSK binder)
// keyed by a traffic (or binder) secret.
func (s *suite13) finishedMAC(base, transcriptHash []byte) []byte {
	key := s.expandLabel(base, "finished", nil, s.hash.Size())
	m := hmac.New(s.hash.New, key)
	m.Write(transcriptHash)
	return m.Sum(nil)
}

// trafficKeys derives the AEAD key and IV of a traffic secret.
func (s *suite13) trafficKeys(secret []byte) (key, iv []byte) {
	return s.expandLabel(secret, "key", nil, s.keyLen), s.expandLabel(secret, "iv", nil, 12)
}

// nextTrafficSecret is the KeyUpdate step (RFC 8446, Section 7.2).
func (s *suite13) nextTrafficSecret(secret []byte) []byte {
	return s.expandLabel(secret, "traffic upd", nil, s.hash.Size())
}
