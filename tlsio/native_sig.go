package tlsio

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"io"
	"slices"
	"sync/atomic"
)

// Signature schemes (RFC 8446, Section 4.2.3) the server can sign with.
const (
	sigECDSAP256SHA256 uint16 = 0x0403
	sigECDSAP384SHA384 uint16 = 0x0503
	sigECDSAP521SHA512 uint16 = 0x0603
	sigPSSSHA256       uint16 = 0x0804
	sigPSSSHA384       uint16 = 0x0805
	sigPSSSHA512       uint16 = 0x0806
	sigEd25519         uint16 = 0x0807
)

// pickScheme returns the scheme to sign with key for a client that offers
// schemes, in the client's order; false if there is none.
func pickScheme(key crypto.PrivateKey, offered []uint16) (uint16, bool) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		// In TLS 1.3 the curve is bound to the scheme.
		var want uint16
		switch k.Curve {
		case elliptic.P256():
			want = sigECDSAP256SHA256
		case elliptic.P384():
			want = sigECDSAP384SHA384
		case elliptic.P521():
			want = sigECDSAP521SHA512
		}
		return want, want != 0 && slices.Contains(offered, want)
	case ed25519.PrivateKey:
		return sigEd25519, slices.Contains(offered, sigEd25519)
	case *rsa.PrivateKey:
		// TLS 1.3 signs with RSASSA-PSS only; rsa_pkcs1 is for certificates.
		for _, s := range offered {
			if h := schemeHash(s); h != 0 && s >= sigPSSSHA256 && s <= sigPSSSHA512 &&
				k.Size() >= 2*h.Size()+2 {
				return s, true
			}
		}
	}
	return 0, false
}

func schemeHash(s uint16) crypto.Hash {
	switch s {
	case sigECDSAP256SHA256, sigPSSSHA256:
		return crypto.SHA256
	case sigECDSAP384SHA384, sigPSSSHA384:
		return crypto.SHA384
	case sigECDSAP521SHA512, sigPSSSHA512:
		return crypto.SHA512
	}
	return 0
}

// signedContent is what a server CertificateVerify signs (Section 4.4.3).
func signedContent(transcriptHash []byte) []byte {
	const ctx = "TLS 1.3, server CertificateVerify"
	b := make([]byte, 0, 64+len(ctx)+1+len(transcriptHash))
	for range 64 {
		b = append(b, 0x20)
	}
	b = append(b, ctx...)
	b = append(b, 0)
	return append(b, transcriptHash...)
}

// signJob is the one piece of a full handshake that runs off the loop: the
// private-key signature. The loop fills it, hands run out through
// HandshakeWork, and picks the result up once done is set.
type signJob struct {
	signer crypto.Signer
	scheme uint16
	msg    []byte // the signed content, hashed here unless Ed25519
	rand   io.Reader
	wake   func()
	closed *atomic.Bool

	// Written by run before done is set; read by the loop after.
	sig  []byte
	err  error
	done atomic.Bool
}

func (j *signJob) run() {
	var opts crypto.SignerOpts = crypto.Hash(0)
	digest := j.msg
	if h := schemeHash(j.scheme); h != 0 {
		d := h.New()
		d.Write(j.msg)
		digest = d.Sum(nil)
		opts = h
		if j.scheme >= sigPSSSHA256 && j.scheme <= sigPSSSHA512 {
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
		}
	}
	j.sig, j.err = j.signer.Sign(j.rand, digest, opts)
	j.done.Store(true)
	if !j.closed.Load() && j.wake != nil {
		j.wake()
	}
}
