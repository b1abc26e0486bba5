package tlsio

import (
	"errors"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Handshake message types (RFC 8446, Section 4).
const (
	hsClientHello       = 1
	hsServerHello       = 2
	hsNewSessionTicket  = 4
	hsEndOfEarlyData    = 5
	hsEncryptedExts     = 8
	hsCertificate       = 11
	hsCertificateVerify = 15
	hsFinished          = 20
	hsKeyUpdate         = 24
	hsMessageHash       = 254
)

// Extension types.
const (
	extServerName          = 0
	extSupportedGroups     = 10
	extSignatureAlgorithms = 13
	extALPN                = 16
	extPreSharedKey        = 41
	extEarlyData           = 42
	extSupportedVersions   = 43
	extCookie              = 44
	extPSKModes            = 45
	extSigAlgsCert         = 50
	extKeyShare            = 51
)

// keyShare is one KeyShareEntry.
type keyShare struct {
	group uint16
	data  []byte
}

// pskIdentity is one offered PSK (a ticket) and its binder.
type pskIdentity struct {
	label  []byte
	age    uint32
	binder []byte
}

// clientHello is a parsed ClientHello. Slices point into raw.
type clientHello struct {
	raw         []byte // the whole handshake message, header included
	version     uint16 // legacy_version
	random      []byte
	sessionID   []byte
	suites      []uint16
	compression []byte
	extOrder    []uint16 // extension types in the order sent

	serverName     string
	versions       []uint16 // supported_versions
	groups         []uint16
	sigAlgs        []uint16
	keyShares      []keyShare
	hasKeyShare    bool
	alpn           []string
	pskModes       []byte
	psks           []pskIdentity
	bindersLen     int // bytes of the binders list, its length prefix included
	earlyData      bool
	cookie         []byte
	hasSigAlgs     bool
	hasGroups      bool
	hasVersionsExt bool
}

// helloError is a ClientHello that cannot be used, and the alert to send.
type helloError struct {
	alert Alert
	msg   string
}

func (e *helloError) Error() string { return "tlsio: ClientHello: " + e.msg }

func badHello(a Alert, msg string) error { return &helloError{a, msg} }

// offers13 reports whether the client offers TLS 1.3.
func (ch *clientHello) offers13() bool {
	for _, v := range ch.versions {
		if v == VersionTLS13 {
			return true
		}
	}
	return false
}

// isGREASE reports a value reserved by RFC 8701 (0x?A?A): it means nothing
// and must be ignored wherever it appears.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// parseClientHello parses a whole ClientHello message (header included).
// It checks what every version shares (framing, duplicate extensions,
// pre_shared_key last, each extension's syntax); checks only TLS 1.3 makes
// (compression methods) are in check13.
func parseClientHello(msg []byte) (*clientHello, error) {
	ch := &clientHello{raw: msg}
	s := cryptobyte.String(msg)
	var typ uint8
	var body cryptobyte.String
	if !s.ReadUint8(&typ) || typ != hsClientHello || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, badHello(AlertDecodeError, "bad message framing")
	}
	var suites, comp cryptobyte.String
	if !body.ReadUint16(&ch.version) || !body.ReadBytes(&ch.random, 32) ||
		!readU8Bytes(&body, &ch.sessionID) || len(ch.sessionID) > 32 ||
		!body.ReadUint16LengthPrefixed(&suites) || len(suites) == 0 || len(suites)%2 != 0 ||
		!body.ReadUint8LengthPrefixed(&comp) || len(comp) == 0 {
		return nil, badHello(AlertDecodeError, "bad fixed fields")
	}
	// legacy_version is not checked: with supported_versions present,
	// RFC 8446, Section 4.2.1 says servers "MUST NOT use the
	// ClientHello.legacy_version value for version negotiation" (clients
	// that send 0x0400 there must still get TLS 1.3); without it, the
	// crypto/tls fallback negotiates from it.
	ch.compression = comp
	for !suites.Empty() {
		var v uint16
		suites.ReadUint16(&v)
		ch.suites = append(ch.suites, v)
	}
	if body.Empty() {
		return ch, nil // no extensions: a TLS 1.2 (or older) client
	}
	var exts cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return nil, badHello(AlertDecodeError, "bad extensions block")
	}
	for !exts.Empty() {
		var et uint16
		var ed cryptobyte.String
		if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&ed) {
			return nil, badHello(AlertDecodeError, "bad extension framing")
		}
		for _, seen := range ch.extOrder {
			if seen == et {
				// RFC 8446, Section 4.2: "There MUST NOT be more than one
				// extension of the same type in a given extension block."
				// The RFC names no alert; decode_error, as crypto/tls and
				// BoringSSL send (BoGo DuplicateExtensionServer-*).
				return nil, badHello(AlertDecodeError, "duplicate extension")
			}
		}
		ch.extOrder = append(ch.extOrder, et)
		if err := ch.parseExt(et, ed); err != nil {
			return nil, err
		}
		if et == extPreSharedKey && !exts.Empty() {
			// Section 4.2.11: "The "pre_shared_key" extension MUST be the last
			// extension in the ClientHello ... Servers MUST check that it is
			// the last extension and otherwise fail the handshake with an
			// "illegal_parameter" alert."
			return nil, badHello(AlertIllegalParameter, "pre_shared_key is not the last extension")
		}
	}
	return ch, nil
}

func readU8Bytes(s *cryptobyte.String, out *[]byte) bool {
	var v cryptobyte.String
	if !s.ReadUint8LengthPrefixed(&v) {
		return false
	}
	*out = v
	return true
}

func readU16List(s cryptobyte.String, out *[]uint16, allowEmpty bool) bool {
	var l cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&l) || !s.Empty() || len(l)%2 != 0 || (!allowEmpty && len(l) == 0) {
		return false
	}
	for !l.Empty() {
		var v uint16
		l.ReadUint16(&v)
		*out = append(*out, v)
	}
	return true
}

var errDecode = errors.New("malformed extension")

// parseExt parses one extension; unknown ones (GREASE included) are
// ignored, as Section 4.2 requires.
func (ch *clientHello) parseExt(et uint16, d cryptobyte.String) error {
	bad := func(what string) error { return badHello(AlertDecodeError, "malformed "+what) }
	switch et {
	case extServerName:
		var list cryptobyte.String
		if !d.ReadUint16LengthPrefixed(&list) || !d.Empty() || list.Empty() {
			return bad("server_name")
		}
		for !list.Empty() {
			var nt uint8
			var name cryptobyte.String
			if !list.ReadUint8(&nt) || !list.ReadUint16LengthPrefixed(&name) || len(name) == 0 {
				return bad("server_name")
			}
			if nt != 0 {
				continue
			}
			if ch.serverName != "" {
				// RFC 6066, Section 3: at most one name of a type.
				return badHello(AlertIllegalParameter, "two host names in server_name")
			}
			for _, b := range name {
				if b <= 0x20 || b >= 0x7f {
					return badHello(AlertIllegalParameter, "server_name is not an ASCII host name")
				}
			}
			ch.serverName = string(name)
		}
	case extSupportedVersions:
		var l cryptobyte.String
		if !d.ReadUint8LengthPrefixed(&l) || !d.Empty() || len(l) == 0 || len(l)%2 != 0 {
			return bad("supported_versions")
		}
		for !l.Empty() {
			var v uint16
			l.ReadUint16(&v)
			ch.versions = append(ch.versions, v)
		}
		ch.hasVersionsExt = true
	case extSupportedGroups:
		if !readU16List(d, &ch.groups, false) {
			return bad("supported_groups")
		}
		ch.hasGroups = true
	case extSignatureAlgorithms:
		if !readU16List(d, &ch.sigAlgs, false) {
			return bad("signature_algorithms")
		}
		ch.hasSigAlgs = true
	case extKeyShare:
		var l cryptobyte.String
		if !d.ReadUint16LengthPrefixed(&l) || !d.Empty() {
			return bad("key_share")
		}
		ch.hasKeyShare = true
		for !l.Empty() {
			var ks keyShare
			var data cryptobyte.String
			if !l.ReadUint16(&ks.group) || !l.ReadUint16LengthPrefixed(&data) || len(data) == 0 {
				return bad("key_share")
			}
			ks.data = data
			for _, o := range ch.keyShares {
				if o.group == ks.group {
					// Section 4.2.8: "Clients MUST NOT offer multiple
					// KeyShareEntry values for the same group."
					return badHello(AlertIllegalParameter, "two key shares for one group")
				}
			}
			ch.keyShares = append(ch.keyShares, ks)
		}
	case extALPN:
		var l cryptobyte.String
		if !d.ReadUint16LengthPrefixed(&l) || !d.Empty() || l.Empty() {
			return bad("application_layer_protocol_negotiation")
		}
		for !l.Empty() {
			var p cryptobyte.String
			if !l.ReadUint8LengthPrefixed(&p) || len(p) == 0 {
				return bad("application_layer_protocol_negotiation")
			}
			ch.alpn = append(ch.alpn, string(p))
		}
	case extPSKModes:
		if !readU8Bytes(&d, &ch.pskModes) || !d.Empty() || len(ch.pskModes) == 0 {
			return bad("psk_key_exchange_modes")
		}
	case extEarlyData:
		if !d.Empty() {
			return bad("early_data")
		}
		ch.earlyData = true
	case extCookie:
		if !d.ReadUint16LengthPrefixed((*cryptobyte.String)(&ch.cookie)) || !d.Empty() || len(ch.cookie) == 0 {
			return bad("cookie")
		}
	case extPreSharedKey:
		var ids, binders cryptobyte.String
		if !d.ReadUint16LengthPrefixed(&ids) || ids.Empty() {
			return bad("pre_shared_key")
		}
		ch.bindersLen = len(d)
		if !d.ReadUint16LengthPrefixed(&binders) || !d.Empty() || binders.Empty() {
			return bad("pre_shared_key")
		}
		for !ids.Empty() {
			var p pskIdentity
			var label cryptobyte.String
			if !ids.ReadUint16LengthPrefixed(&label) || len(label) == 0 || !ids.ReadUint32(&p.age) {
				return bad("pre_shared_key")
			}
			p.label = label
			ch.psks = append(ch.psks, p)
		}
		for i := 0; !binders.Empty(); i++ {
			var b cryptobyte.String
			// Lengths are checked against the hash of the identity we
			// choose (acceptPSK); identities we ignore may carry binders of
			// other hashes (a TLS 1.2 session's, say).
			if !binders.ReadUint8LengthPrefixed(&b) || len(b) == 0 {
				return bad("pre_shared_key binders")
			}
			if i >= len(ch.psks) {
				// Section 4.2.11: one binder per identity.
				return badHello(AlertIllegalParameter, "more PSK binders than identities")
			}
			ch.psks[i].binder = b
		}
		if ch.psks[len(ch.psks)-1].binder == nil {
			// Section 4.2.11: one binder per identity.
			return badHello(AlertIllegalParameter, "fewer PSK binders than identities")
		}
	}
	return nil
}

// check13 applies the checks TLS 1.3 adds once the client is known to
// offer it (Section 4.1.2).
func (ch *clientHello) check13() error {
	// "For every TLS 1.3 ClientHello, this vector MUST contain exactly one
	// byte, set to zero ... If a TLS 1.3 ClientHello is received with any
	// other value in this field, the server MUST abort the handshake with
	// an "illegal_parameter" alert."
	if len(ch.compression) != 1 || ch.compression[0] != 0 {
		return badHello(AlertIllegalParameter, "compression methods other than null")
	}
	if ch.version < VersionTLS12 {
		// Section 4.2.1 / D.5: a TLS 1.3 client sends 0x0303; older values
		// with supported_versions are a broken or downgraded client.
		return badHello(AlertProtocolVersion, "legacy_version below TLS 1.2 with supported_versions")
	}
	if len(ch.psks) > 0 && len(ch.pskModes) == 0 {
		// Section 4.2.9: "If clients offer "pre_shared_key" without a
		// "psk_key_exchange_modes" extension, servers MUST abort the
		// handshake."
		return badHello(AlertMissingExtension, "pre_shared_key without psk_key_exchange_modes")
	}
	if len(ch.psks) == 0 {
		// Section 9.2: without a PSK, a TLS 1.3 ClientHello must carry
		// signature_algorithms, supported_groups and key_share.
		if !ch.hasSigAlgs || !ch.hasGroups || !ch.hasKeyShare {
			return badHello(AlertMissingExtension, "missing signature_algorithms, supported_groups or key_share")
		}
	}
	if ch.hasGroups != ch.hasKeyShare {
		// Section 9.2: "If containing a "supported_groups" extension, it
		// MUST also contain a "key_share" extension, and vice versa."
		return badHello(AlertMissingExtension, "supported_groups without key_share or vice versa")
	}
	for _, ks := range ch.keyShares {
		if !slices.Contains(ch.groups, ks.group) {
			// Section 4.2.8: "Clients MUST NOT offer any KeyShareEntry
			// values for groups not listed in the client's "supported_groups"
			// extension. Servers MAY check for violations of these rules and
			// abort the handshake with an "illegal_parameter" alert."
			return badHello(AlertIllegalParameter, "key share for a group not in supported_groups")
		}
	}
	return nil
}

// truncated returns the ClientHello up to the binders list, the part PSK
// binders cover (Section 4.2.11.2).
func (ch *clientHello) truncated() []byte { return ch.raw[:len(ch.raw)-ch.bindersLen] }
