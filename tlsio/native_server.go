package tlsio

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// The server handshake, after rustls' server/hs.rs: each state is a value
// that handles the next handshake message and returns the state after it.
//
//	expectClientHello --HRR--> expectClientHello (retried)
//	        |
//	        +-- full: signJob off the loop --> expectFinished
//	        +-- resumed (PSK) ----------------> expectFinished
//	expectFinished --> established (KeyUpdate only)
type hsState interface {
	// handle processes one whole handshake message. keyChange reports that
	// the read keys changed after it (so nothing may follow in its record).
	handle(c *nativeConn, msg []byte) (next hsState, keyChange bool, err error)
}

// hsData is what only the handshake needs; dropped once established.
type hsData struct {
	sawHello   bool
	retried    bool // a HelloRetryRequest was sent
	hrrGroup   uint16
	ch1        *clientHello
	transcript hash.Hash
	prefix     []byte // message_hash and HRR, for binders after a retry
	sessionID  []byte
	dheMode    bool // the client offered psk_dhe_ke: a ticket is of use

	early, hsSecret, master []byte
	cHS                     []byte
	cAP                     []byte
	wantFinished            []byte

	flight []byte // handshake messages of the server's flight, not sealed yet
}

// alertError is a handshake failure with the alert to send.
type alertError struct {
	alert Alert
	msg   string
}

func (e *alertError) Error() string { return "tlsio: " + e.msg }

func alertErr(a Alert, msg string) error { return &alertError{a, msg} }

var (
	errBadRecordVersion   = errors.New("tlsio: record version is not 3.x")
	errUnexpectedRecord   = errors.New("tlsio: unexpected record")
	errPlaintextHandshake = errors.New("tlsio: plaintext handshake record after keys")
	errEarlyAppData       = errors.New("tlsio: application data before the handshake completed")
	errEmptyHandshake     = errors.New("tlsio: empty handshake record")
	errTooManyEmpty       = errors.New("tlsio: too many records without data")
	errBadAlert           = errors.New("tlsio: malformed alert")
	errPeerAlert          = errors.New("tlsio: alert from peer")
	errHandshakeTooLong   = errors.New("tlsio: handshake message too long")
	errSpansKeyChange     = errors.New("tlsio: handshake message spans a key change")
)

// helloRetryRandom is the ServerHello.random of a HelloRetryRequest:
// SHA-256("HelloRetryRequest") (Section 4.1.3).
var helloRetryRandom = sha256.Sum256([]byte("HelloRetryRequest"))

// handshakeMsg dispatches one message to the current state.
func (c *nativeConn) handshakeMsg(msg []byte) (bool, error) {
	if c.st == nil {
		return false, alertErr(AlertUnexpectedMessage, "handshake message while none is expected")
	}
	next, kc, err := c.st.handle(c, msg)
	if err != nil {
		return false, err
	}
	c.st = next
	return kc, nil
}

// ---- ClientHello ----

type expectClientHello struct{}

func (expectClientHello) handle(c *nativeConn, msg []byte) (hsState, bool, error) {
	if msg[0] != hsClientHello {
		return nil, false, alertErr(AlertUnexpectedMessage, "expected ClientHello")
	}
	if c.hs == nil {
		c.hs = &hsData{}
	}
	hs := c.hs
	ch, err := parseClientHello(append([]byte(nil), msg...))
	if err != nil {
		return nil, false, err
	}
	if !ch.offers13() {
		if hs.retried {
			return nil, false, alertErr(AlertIllegalParameter, "second ClientHello does not offer TLS 1.3")
		}
		c.fallback()
		return nil, false, nil
	}
	c.decided = true
	c.pre = nil
	hs.sawHello = true
	hs.dheMode = slices.Contains(ch.pskModes, 1)
	if err := ch.check13(); err != nil {
		return nil, false, err
	}
	if hs.retried {
		if err := c.checkSecondHello(ch); err != nil {
			return nil, false, err
		}
	} else {
		c.suite = c.srv.pickSuite(ch.suites)
		if c.suite == nil {
			return nil, false, alertErr(AlertHandshakeFailure, "no TLS 1.3 cipher suite in common")
		}
		hs.transcript = c.suite.hash.New()
		hs.sessionID = ch.sessionID
	}
	if ch.earlyData {
		// 0-RTT is declined: EncryptedExtensions will not accept it, and
		// the client's early records are skipped (Section 4.2.10).
		c.earlySkip = maxEarlySkip
	}

	// Key exchange group: a share the client sent, in our order; else ask
	// for one (HelloRetryRequest).
	var share *keyShare
	for _, g := range groupPrefs {
		for i := range ch.keyShares {
			if ch.keyShares[i].group == g {
				share = &ch.keyShares[i]
				break
			}
		}
		if share != nil {
			break
		}
	}
	if share == nil {
		if hs.retried {
			return nil, false, alertErr(AlertIllegalParameter, "second ClientHello lacks the requested key share")
		}
		for _, g := range groupPrefs {
			if slices.Contains(ch.groups, g) {
				return c.helloRetry(ch, g)
			}
		}
		return nil, false, alertErr(AlertHandshakeFailure, "no key exchange group in common")
	}

	psk, pskIndex, err := c.acceptPSK(ch)
	if err != nil {
		return nil, false, err
	}
	alpn, err := negotiateALPN(c.srv.config.NextProtos, ch.alpn)
	if err != nil {
		return nil, false, err
	}
	var pair *KeyPair
	var scheme uint16
	if psk == nil {
		if pair, scheme = c.srv.selectCert(ch); pair == nil {
			return nil, false, alertErr(AlertHandshakeFailure, "no certificate and signature scheme the client accepts")
		}
	}

	srvShare, secret, err := serverShare(c.srv.rand(), share.group, share.data)
	if err != nil {
		return nil, false, alertErr(AlertIllegalParameter, "invalid key share")
	}
	c.info = Info{Version: VersionTLS13, CipherSuite: c.suite.id, Group: share.group, ALPN: alpn,
		ServerName: ch.serverName, Resumed: psk != nil, Engine: EngineNative}

	// ServerHello, in plaintext.
	var random [32]byte
	if _, err := io.ReadFull(c.srv.rand(), random[:]); err != nil {
		return nil, false, err
	}
	sh := buildServerHello(random[:], ch.sessionID, c.suite.id, func(b *cryptobyte.Builder) {
		b.AddUint16(extKeyShare)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(share.group)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(srvShare) })
		})
		if psk != nil {
			b.AddUint16(extPreSharedKey)
			b.AddUint16(2)
			b.AddUint16(uint16(pskIndex))
		}
	})
	hs.transcript.Write(ch.raw)
	hs.transcript.Write(sh)
	c.out = c.wr.seal(c.out, recordTypeHandshake, sh, 0)
	if !hs.retried {
		// Middlebox compatibility (Appendix D.4): a dummy change_cipher_spec
		// right after our first handshake message. It is a MUST only when
		// the client sent a session ID, but "either side can send
		// change_cipher_spec at any time", and clients (BoGo's among them)
		// expect it always, as crypto/tls and BoringSSL send it.
		c.out = append(c.out, recordTypeCCS, 3, 3, 0, 1, 1)
	}

	s := c.suite
	hs.early = s.earlySecret(psk)
	hs.hsSecret = s.nextSecret(hs.early, secret)
	th := hs.transcript.Sum(nil)
	hs.cHS = s.deriveSecret(hs.hsSecret, "c hs traffic", th)
	sHS := s.deriveSecret(hs.hsSecret, "s hs traffic", th)
	hs.master = s.nextSecret(hs.hsSecret, nil)
	if err := c.rd.set(s, hs.cHS); err != nil {
		return nil, false, err
	}
	if err := c.wr.set(s, sHS); err != nil {
		return nil, false, err
	}
	c.wrSecret = sHS

	// EncryptedExtensions.
	ee := buildMsg(hsEncryptedExts, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if ch.serverName != "" && psk == nil {
				// RFC 6066, Section 3: the name chose the certificate, so
				// an empty server_name says it was used (not when
				// resuming, where the ticket's name had to match).
				b.AddUint16(extServerName)
				b.AddUint16(0)
			}
			if alpn != "" {
				b.AddUint16(extALPN)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(alpn)) })
					})
				})
			}
		})
	})
	c.hsMsg(ee)
	if psk != nil {
		c.finishFlight(nil)
		return expectFinished{}, true, nil
	}

	// Certificate, then the signature off the loop.
	certMsg := buildMsg(hsCertificate, func(b *cryptobyte.Builder) {
		b.AddUint8(0) // certificate_request_context
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, der := range pair.cert.Certificate {
				b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(der) })
				b.AddUint16(0) // extensions
			}
		})
	})
	c.hsMsg(certMsg)
	signer, ok := pair.cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, false, alertErr(AlertInternalError, "private key cannot sign")
	}
	c.job = &signJob{signer: signer, scheme: scheme, msg: signedContent(hs.transcript.Sum(nil)),
		rand: c.srv.rand(), wake: c.wake, closed: &c.closed}
	return expectFinished{}, true, nil
}

// hsMsg adds a message of the server's flight to the transcript.
func (c *nativeConn) hsMsg(m []byte) {
	c.hs.transcript.Write(m)
	c.hs.flight = append(c.hs.flight, m...)
}

// finishFlight completes the server's flight once the signature (if any)
// is there: CertificateVerify, Finished, then the application keys.
func (c *nativeConn) finishFlight(j *signJob) {
	hs, s := c.hs, c.suite
	if j != nil {
		if j.err != nil {
			c.failAlert(AlertInternalError, j.err)
			return
		}
		cv := buildMsg(hsCertificateVerify, func(b *cryptobyte.Builder) {
			b.AddUint16(j.scheme)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(j.sig) })
		})
		c.hsMsg(cv)
	}
	fin := buildMsg(hsFinished, func(b *cryptobyte.Builder) {
		b.AddBytes(s.finishedMAC(c.wrSecret, hs.transcript.Sum(nil)))
	})
	c.hsMsg(fin)
	th := hs.transcript.Sum(nil)
	hs.cAP = s.deriveSecret(hs.master, "c ap traffic", th)
	sAP := s.deriveSecret(hs.master, "s ap traffic", th)
	hs.wantFinished = s.finishedMAC(hs.cHS, th)
	for f := hs.flight; len(f) > 0; {
		n := min(len(f), maxPlaintext)
		c.out = c.wr.seal(c.out, recordTypeHandshake, f[:n], 0)
		f = f[n:]
	}
	hs.flight = nil
	if err := c.wr.set(s, sAP); err != nil {
		c.failAlert(AlertInternalError, err)
		return
	}
	c.wrSecret = sAP
}

// helloRetry answers with a HelloRetryRequest for group g.
func (c *nativeConn) helloRetry(ch *clientHello, g uint16) (hsState, bool, error) {
	hs := c.hs
	hrr := buildServerHello(helloRetryRandom[:], ch.sessionID, c.suite.id, func(b *cryptobyte.Builder) {
		b.AddUint16(extKeyShare)
		b.AddUint16(2)
		b.AddUint16(g)
	})
	// Section 4.4.1: the transcript restarts with a synthetic message_hash
	// holding Hash(ClientHello1).
	h1 := c.suite.hash.New()
	h1.Write(ch.raw)
	mh := append([]byte{hsMessageHash, 0, 0, byte(c.suite.hash.Size())}, h1.Sum(nil)...)
	hs.prefix = append(append(hs.prefix, mh...), hrr...)
	hs.transcript.Write(hs.prefix)
	hs.retried, hs.hrrGroup, hs.ch1 = true, g, ch
	c.hrr = true
	c.out = c.wr.seal(c.out, recordTypeHandshake, hrr, 0)
	c.out = append(c.out, recordTypeCCS, 3, 3, 0, 1, 1)
	c.earlySkip = 0 // no 0-RTT after a retry
	// Reported as a key change: the client may send its second ClientHello
	// only after reading the HelloRetryRequest, so handshake bytes already
	// behind the first are unexpected_message (BoGo
	// PartialSecondClientHelloAfterFirst), as before a key change.
	return expectClientHello{}, true, nil
}

// checkSecondHello applies Section 4.1.2's rules to the ClientHello sent
// after a HelloRetryRequest.
func (c *nativeConn) checkSecondHello(ch *clientHello) error {
	hs, s := c.hs, c.suite
	ch1 := hs.ch1
	switch {
	case len(ch.keyShares) != 1 || ch.keyShares[0].group != hs.hrrGroup:
		return alertErr(AlertIllegalParameter, "second ClientHello must hold one key share, for the requested group")
	case ch.earlyData:
		return alertErr(AlertIllegalParameter, "early_data after HelloRetryRequest")
	case string(ch.sessionID) != string(ch1.sessionID):
		return alertErr(AlertIllegalParameter, "second ClientHello changed legacy_session_id")
	case string(ch.random) != string(ch1.random):
		return alertErr(AlertIllegalParameter, "second ClientHello changed random")
	case c.srv.pickSuite(ch.suites) != s:
		return alertErr(AlertIllegalParameter, "second ClientHello changed the cipher suites")
	case ch.serverName != ch1.serverName:
		return alertErr(AlertIllegalParameter, "second ClientHello changed server_name")
	}
	return nil
}

// pickSuite takes the client's first TLS 1.3 suite (the client knows
// whether it has AES hardware).
func (srv *Server) pickSuite(offered []uint16) *suite13 {
	for _, id := range offered {
		if srv.onlySuite != 0 && id != srv.onlySuite {
			continue
		}
		if s := suiteByID(id); s != nil {
			return s
		}
	}
	return nil
}

// negotiateALPN picks the first of the server's protocols the client
// offers. With none in common the handshake fails with
// no_application_protocol (RFC 7301, Section 3.2), except that a client
// offering only http/1.1 to an h2 server proceeds without ALPN, as with
// crypto/tls.
func negotiateALPN(server, client []string) (string, error) {
	if len(server) == 0 || len(client) == 0 {
		return "", nil
	}
	http11 := false
	for _, s := range server {
		for _, p := range client {
			if s == p {
				return s, nil
			}
			if s == "h2" && p == "http/1.1" {
				http11 = true
			}
		}
	}
	if http11 {
		return "", nil
	}
	return "", alertErr(AlertNoApplicationProtocol, "no application protocol in common")
}

// selectCert picks the key pair by SNI, then the first one whose key the
// client can verify.
func (s *Server) selectCert(ch *clientHello) (*KeyPair, uint16) {
	cands, set := s.certs.candidates(ch.serverName)
	if len(cands) == 0 {
		cands = set.pairs[:1]
	}
	for _, k := range cands {
		if sc, ok := pickScheme(k.cert.PrivateKey, ch.sigAlgs); ok {
			return k, sc
		}
	}
	return nil, 0
}

// acceptPSK looks for a ticket of ours among the offered identities and
// checks its binder. It returns the PSK (nil for a full handshake) and
// the index of the identity chosen.
func (c *nativeConn) acceptPSK(ch *clientHello) ([]byte, int, error) {
	if c.srv.ticketsOff || len(ch.psks) == 0 || !slices.Contains(ch.pskModes, 1) {
		// Only psk_dhe_ke (1) is supported: psk_ke alone gives no forward
		// secrecy.
		return nil, 0, nil
	}
	for i, id := range ch.psks {
		st := c.srv.openTicket(c.now, id.label)
		if st == nil {
			continue
		}
		ts := suiteByID(st.suite)
		if ts == nil || ts.hash != c.suite.hash || st.sni != ch.serverName {
			continue
		}
		early := c.suite.earlySecret(st.psk)
		binderKey := c.suite.deriveSecret(early, "res binder", c.suite.emptyHash())
		h := c.suite.hash.New()
		h.Write(c.hs.prefix)
		h.Write(ch.truncated())
		want := c.suite.finishedMAC(binderKey, h.Sum(nil))
		if !hmac.Equal(want, id.binder) {
			// Section 4.2.11: "If this value does not validate, the server
			// MUST abort the handshake."
			return nil, 0, alertErr(AlertDecryptError, "PSK binder does not verify")
		}
		return st.psk, i, nil
	}
	return nil, 0, nil
}

// ---- client Finished ----

type expectFinished struct{}

func (expectFinished) handle(c *nativeConn, msg []byte) (hsState, bool, error) {
	if c.job != nil {
		return nil, false, alertErr(AlertUnexpectedMessage, "message before the server's flight was sent")
	}
	if msg[0] != hsFinished {
		return nil, false, alertErr(AlertUnexpectedMessage, "expected Finished")
	}
	hs, s := c.hs, c.suite
	// A Finished of the wrong length is one that does not verify: Section
	// 4.4.4 says "if incorrect MUST terminate the connection with a
	// "decrypt_error" alert" (hmac.Equal is false for unequal lengths).
	if !hmac.Equal(msg[4:], hs.wantFinished) {
		return nil, false, alertErr(AlertDecryptError, "client Finished does not verify")
	}
	hs.transcript.Write(msg)
	if err := c.rd.set(s, hs.cAP); err != nil {
		return nil, false, err
	}
	c.rdSecret = hs.cAP
	var ticket []byte
	// Section 4.2.9: servers "SHOULD NOT send NewSessionTicket with
	// tickets that are not compatible with the advertised modes", and we
	// resume with psk_dhe_ke only.
	if !c.srv.ticketsOff && hs.dheMode {
		res := s.deriveSecret(hs.master, "res master", hs.transcript.Sum(nil))
		var err error
		if ticket, err = c.newTicket(res); err != nil {
			return nil, false, err
		}
	}
	c.hs = nil
	c.state = Established
	c.events |= HandshakeDone
	c.emptyRun = 0
	if ticket != nil {
		// After the client's Finished, not with the server's flight: the
		// client's first request is not held behind it (see doc.go).
		c.out = c.wr.seal(c.out, recordTypeHandshake, ticket, 0)
	}
	return established{}, true, nil
}

// newTicket builds a NewSessionTicket message for this session.
func (c *nativeConn) newTicket(resMaster []byte) ([]byte, error) {
	s := c.suite
	var nonce [1]byte // one ticket per connection: nonce 0
	var add [4]byte
	if _, err := io.ReadFull(c.srv.rand(), add[:]); err != nil {
		return nil, err
	}
	st := &ticketState{
		suite:   s.id,
		created: c.now.UnixMilli(),
		ageAdd:  binary.BigEndian.Uint32(add[:]),
		psk:     s.expandLabel(resMaster, "resumption", nonce[:], s.hash.Size()),
		sni:     c.info.ServerName,
	}
	label, err := c.srv.sealTicket(c.srv.rand(), c.now, st)
	if err != nil {
		return nil, err
	}
	return buildMsg(hsNewSessionTicket, func(b *cryptobyte.Builder) {
		b.AddUint32(uint32(ticketLifetime.Seconds()))
		b.AddUint32(st.ageAdd)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(nonce[:]) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(label) })
		b.AddUint16(0) // no early_data: 0-RTT is never offered
	}), nil
}

// ---- after the handshake ----

type established struct{}

func (established) handle(c *nativeConn, msg []byte) (hsState, bool, error) {
	if msg[0] != hsKeyUpdate {
		// A client sends no other post-handshake message to a server that
		// asked for no certificate.
		return nil, false, alertErr(AlertUnexpectedMessage, "unexpected post-handshake message")
	}
	if len(msg) != 5 {
		return nil, false, alertErr(AlertDecodeError, "malformed KeyUpdate")
	}
	req := msg[4]
	if req > 1 {
		// Section 4.6.3: "If an implementation receives any other value, it
		// MUST terminate the connection with an "illegal_parameter" alert."
		return nil, false, alertErr(AlertIllegalParameter, "KeyUpdate request is neither 0 nor 1")
	}
	c.kuRun++
	if c.kuRun > maxKeyUpdateRun {
		return nil, false, alertErr(AlertUnexpectedMessage, "too many KeyUpdates without data")
	}
	c.rdSecret = c.suite.nextTrafficSecret(c.rdSecret)
	if err := c.rd.set(c.suite, c.rdSecret); err != nil {
		return nil, false, err
	}
	if req == 1 && !c.events.Has(CloseNotifySent) {
		// Answer before any more data under the old keys: it goes out with
		// the next AppendOutput or first in the next Seal.
		c.out = c.sendKeyUpdate(c.out, false)
	}
	return established{}, true, nil
}

// ---- message builders ----

func buildMsg(typ uint8, body func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddUint8(typ)
	b.AddUint24LengthPrefixed(body)
	return b.BytesOrPanic()
}

func buildServerHello(random, sessionID []byte, suite uint16, exts func(*cryptobyte.Builder)) []byte {
	return buildMsg(hsServerHello, func(b *cryptobyte.Builder) {
		b.AddUint16(VersionTLS12) // legacy_version
		b.AddBytes(random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
		b.AddUint16(suite)
		b.AddUint8(0) // legacy_compression_method
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(extSupportedVersions)
			b.AddUint16(2)
			b.AddUint16(VersionTLS13)
			exts(b)
		})
	})
}
