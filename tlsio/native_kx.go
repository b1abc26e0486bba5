package tlsio

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"errors"
	"io"
)

// Named groups (RFC 8446, Section 4.2.7; draft-ietf-tls-ecdhe-mlkem).
const (
	groupP256           uint16 = 0x0017
	groupP384           uint16 = 0x0018
	groupX25519         uint16 = 0x001d
	groupX25519MLKEM768 uint16 = 0x11ec
)

// groupPrefs is the server's preference: hybrid post-quantum first.
var groupPrefs = [...]uint16{groupX25519MLKEM768, groupX25519, groupP256, groupP384}

func curveOf(g uint16) ecdh.Curve {
	switch g {
	case groupX25519, groupX25519MLKEM768:
		return ecdh.X25519()
	case groupP256:
		return ecdh.P256()
	case groupP384:
		return ecdh.P384()
	}
	return nil
}

var errBadKeyShare = errors.New("tlsio: invalid key share")

// serverShare answers a client's key share: it returns the server's share
// and the shared secret. For X25519MLKEM768 the client share is an ML-KEM-768
// encapsulation key followed by an X25519 key, the server's is the ML-KEM
// ciphertext followed by its X25519 key, and the secret is the ML-KEM
// secret followed by the X25519 one.
func serverShare(rand io.Reader, g uint16, client []byte) (share, secret []byte, err error) {
	curve := curveOf(g)
	if curve == nil {
		return nil, nil, errBadKeyShare
	}
	var kemCT, kemSS, ecdhPart []byte
	ecdhPart = client
	if g == groupX25519MLKEM768 {
		if len(client) != mlkem.EncapsulationKeySize768+32 {
			return nil, nil, errBadKeyShare
		}
		ek, err := mlkem.NewEncapsulationKey768(client[:mlkem.EncapsulationKeySize768])
		if err != nil {
			return nil, nil, errBadKeyShare
		}
		kemSS, kemCT = ek.Encapsulate()
		ecdhPart = client[mlkem.EncapsulationKeySize768:]
	}
	priv, err := curve.GenerateKey(rand) // since Go 1.26 the system's source is used anyway
	if err != nil {
		return nil, nil, err
	}
	ss, err := keyExchange(g, ecdhPart, priv)
	if err != nil {
		return nil, nil, err
	}
	if g == groupX25519MLKEM768 {
		return append(kemCT, priv.PublicKey().Bytes()...), append(kemSS, ss...), nil
	}
	return priv.PublicKey().Bytes(), ss, nil
}

// keyExchange is the (EC)DH half: the peer's public key against priv.
func keyExchange(g uint16, peer []byte, priv *ecdh.PrivateKey) ([]byte, error) {
	pub, err := priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, errBadKeyShare
	}
	ss, err := priv.ECDH(pub)
	if err != nil {
		// X25519's all-zero output (a low-order point).
		return nil, errBadKeyShare
	}
	return ss, nil
}
